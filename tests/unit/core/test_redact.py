"""Secret query values out of logged URLs (hubbub.core.redact)."""

from __future__ import annotations

import pytest

from hubbub.core.redact import REDACTED, redact_query, redact_text


def test_redact_query_replaces_only_secret_values() -> None:
    assert redact_query("/p", "") == "/p"
    assert redact_query("/p", "token=abc&x=1") == f"/p?token={REDACTED}&x=1"
    assert redact_query("/p", "CF_Connect=%7B%7D&flag") == f"/p?CF_Connect={REDACTED}&flag"
    assert redact_query("/p", "%74oken=abc") == f"/p?%74oken={REDACTED}"  # percent-encoded name


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('1.2.3.4 - "GET /uni_sse?cf_connect=%7B%22token%22%3A%22eyJ.s3cret%22%7D HTTP/1.1" 200',
         f'1.2.3.4 - "GET /uni_sse?cf_connect={REDACTED} HTTP/1.1" 200'),
        ("/a?x=1&token=s3cret#frag", f"/a?x=1&token={REDACTED}#frag"),
        ("/a?api_key=k&key=v&keys=ok", f"/a?api_key={REDACTED}&key={REDACTED}&keys=ok"),
        ("WebSocket /rt/connection/websocket", "WebSocket /rt/connection/websocket"),
        ("no url = here", "no url = here"),
        ("/a?PASSWORD='s3cret'&b=2", f"/a?PASSWORD={REDACTED}&b=2"),
    ],
)  # fmt: skip
def test_redact_text_finds_query_pairs_in_a_line(line: str, expected: str) -> None:
    assert redact_text(line) == expected
    assert "s3cret" not in redact_text(line)


def test_the_host_access_log_filter_rewrites_uvicorn_and_hypercorn_records() -> None:
    """hubbub.server.hostlogs: uvicorn passes the path as an argument, hypercorn a dict of
    atoms; both come out with the secret redacted, and the record is never dropped."""
    import logging

    from hubbub.server.hostlogs import RedactQuerySecrets

    keep = RedactQuerySecrets()
    uvicorn_record = logging.LogRecord(
        "uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/rt/connection/uni_sse?cf_connect=%7B%7D", "1.1", 200), None,
    )  # fmt: skip
    assert keep.filter(uvicorn_record)
    assert uvicorn_record.getMessage() == (
        f'1.2.3.4:5 - "GET /rt/connection/uni_sse?cf_connect={REDACTED} HTTP/1.1" 200'
    )
    atoms = {
        "r": "GET /rt/x?token=abc HTTP/1.1",
        "q": "token=abc&y=2",
        "s": 200,
        "f": "https://app.example/page?token=abc",
    }
    hypercorn_record = logging.LogRecord(
        "hypercorn.access", logging.INFO, "", 0, "%(r)s %(q)s %(s)s %(f)s", (atoms,), None
    )
    assert keep.filter(hypercorn_record)
    assert hypercorn_record.getMessage() == (
        f"GET /rt/x?token={REDACTED} HTTP/1.1 token={REDACTED}&y=2 200 "
        f"https://app.example/page?token={REDACTED}"
    )
