"""The proxy's settings and its HTTP calls (hubbub.proxy.caller) against an in-process
aiohttp backend: outcomes counted, failures as ProxyFailed (error 100, temporary), bounded
bodies, the unreachable-backend log line at most once per interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from pydantic import ValidationError

from hubbub.config import Settings, load_settings
from hubbub.errors import ClientError, ConfigError, DisconnectError
from hubbub.proxy import bodies, caller
from hubbub.proxy.caller import ProxyCaller, ProxyFailed
from tests.support.proxy_backend import closed_port

# -- settings --------------------------------------------------------------------------------


def test_endpoints_must_be_http_urls() -> None:
    for bad in ("ftp://h/x", "localhost:3000/x", "http:///x", "/connect"):
        with pytest.raises(ConfigError, match="proxy_connect_endpoint"):
            load_settings({"proxy_connect_endpoint": bad}, environ={})
    settings = load_settings({"proxy_rpc_endpoint": "https://h:8443/rpc"}, environ={})
    assert settings.proxy_rpc_endpoint == "https://h:8443/rpc"
    assert load_settings({"proxy_rpc_endpoint": ""}, environ={}).proxy_rpc_endpoint is None


def test_a_namespace_asking_a_proxy_needs_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="namespace 'a' sets proxy_publish"):
        load_settings({"namespaces": [{"name": "a", "proxy_publish": True}]}, environ={})
    with pytest.raises(ConfigError, match=r"\[channel\] sets proxy_sub_refresh"):
        load_settings({"channel": {"proxy_sub_refresh": True}}, environ={})
    with pytest.raises(ValidationError, match="proxy_subscribe_endpoint"):
        Settings.model_validate({"namespaces": [{"name": "a", "proxy_subscribe_endpoint": "nope"}]})
    ok = Settings.model_validate(
        {"namespaces": [{"name": "a", "proxy_subscribe": True,
                         "proxy_subscribe_endpoint": "http://h/s"}]}
    )  # fmt: skip
    assert ok.namespaces[0].proxy_subscribe_endpoint == "http://h/s"


def test_header_names_lowercased_from_lists_and_comma_strings() -> None:
    env = {"HUBBUB_PROXY_HTTP_HEADERS": "Cookie, X-Token"}
    assert load_settings(environ=env).proxy_http_headers == ("cookie", "x-token")
    settings = load_settings({"proxy_emulated_headers": ["Authorization"]}, environ={})
    assert settings.proxy_emulated_headers == ("authorization",)


# -- calls -----------------------------------------------------------------------------------


@pytest.fixture
async def backend() -> AsyncIterator[tuple[str, dict[str, web.StreamResponse]]]:
    """A backend answering ``replies[path]`` (a JSON body with status 200 by default)."""
    replies: dict[str, web.StreamResponse] = {}

    async def handle(request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if path == "slow":
            await asyncio.sleep(1)
        return replies.get(path) or web.json_response({"result": {"user": "u"}})

    app = web.Application()
    app.router.add_post("/{path}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/", replies
    finally:
        await runner.cleanup()


async def test_outcomes_are_counted_and_failures_are_temporary(
    backend: tuple[str, dict[str, web.StreamResponse]],
) -> None:
    url, replies = backend
    proxy = ProxyCaller(Settings(proxy_timeout=0.3))
    try:
        answer = await proxy.ask("connect", url + "ok", b"{}", {}, bodies.connect_answer)
        assert answer is not None and answer.user == "u"
        replies["err"] = web.json_response({"error": {"code": 4000, "message": "x"}})
        with pytest.raises(ClientError) as refused:
            await proxy.ask("connect", url + "err", b"{}", {}, bodies.connect_answer)
        assert not isinstance(refused.value, ProxyFailed) and refused.value.code == 4000
        replies["bye"] = web.json_response({"disconnect": {"code": 4500, "reason": "r"}})
        with pytest.raises(DisconnectError):
            await proxy.ask("connect", url + "bye", b"{}", {}, bodies.connect_answer)
        replies["500"] = web.json_response({"result": {}}, status=500)
        replies["bad"] = web.Response(body=b"nope")
        for path in ("500", "bad", "slow"):
            with pytest.raises(ProxyFailed) as failed:
                await proxy.ask("rpc", url + path, b"{}", {}, bodies.rpc_answer)
            assert (failed.value.code, failed.value.temporary) == (100, True)
        with pytest.raises(ProxyFailed):
            await proxy.ask(
                "rpc", f"http://127.0.0.1:{closed_port()}/", b"{}", {}, bodies.rpc_answer
            )
        counts = {k: n for k, n in proxy.stats.counts.items() if n}
        assert counts == {
            ("connect", "ok"): 1,
            ("connect", "error"): 1,
            ("connect", "disconnect"): 1,
            ("rpc", "unavailable"): 2,
            ("rpc", "malformed"): 1,
            ("rpc", "timeout"): 1,
        }
        assert proxy.stats.durations["rpc"].cumulative()[-1][1] == 4
    finally:
        await proxy.close()


async def test_a_body_over_the_limit_is_not_read(
    backend: tuple[str, dict[str, web.StreamResponse]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, replies = backend
    monkeypatch.setattr(caller, "MAX_RESPONSE_BYTES", 100)
    replies["big"] = web.json_response({"result": {"data": "x" * 200}})
    proxy = ProxyCaller(Settings())
    try:
        with pytest.raises(ProxyFailed) as failed:
            await proxy.ask("rpc", url + "big", b"{}", {}, bodies.rpc_answer)
        assert failed.value.why == "response too large"
    finally:
        await proxy.close()


async def test_a_call_given_up_is_counted_cancelled_not_ok(
    backend: tuple[str, dict[str, web.StreamResponse]],
) -> None:
    url, _ = backend
    proxy = ProxyCaller(Settings(proxy_timeout=5))
    try:
        call = asyncio.create_task(proxy.ask("connect", url + "slow", b"{}", {}, len))
        await asyncio.sleep(0.2)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert {k: n for k, n in proxy.stats.counts.items() if n} == {("connect", "cancelled"): 1}
    finally:
        await proxy.close()


async def test_redirects_are_not_followed(
    backend: tuple[str, dict[str, web.StreamResponse]],
) -> None:
    """A 3xx is a failure (error 100): the request, its cookies and authorization, never go
    to the Location, whatever the status (307 and 308 would repost the body)."""
    url, replies = backend
    replies["elsewhere"] = web.json_response({"result": {"user": "redirected"}})
    proxy = ProxyCaller(Settings(proxy_timeout=1))
    try:
        for status in (301, 302, 303, 307, 308):
            replies["moved"] = web.Response(status=status, headers={"Location": url + "elsewhere"})
            with pytest.raises(ProxyFailed) as failed:
                await proxy.ask(
                    "connect", url + "moved", b"{}", {"cookie": "s=1"}, bodies.connect_answer
                )
            assert failed.value.why == f"status {status} (redirects are not followed)"
    finally:
        await proxy.close()


async def test_an_unreachable_backend_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = f"http://user:pw@127.0.0.1:{closed_port()}/connect?token=secret"
    proxy = ProxyCaller(Settings())
    try:
        with caplog.at_level(logging.WARNING, logger="hubbub.proxy.caller"):
            for _ in range(5):
                with pytest.raises(ProxyFailed):
                    await proxy.ask("connect", endpoint, b"{}", {}, bodies.connect_answer)
        (line,) = [r.getMessage() for r in caplog.records]
        assert "connect proxy http://127.0.0.1:" in line and "token=REDACTED" in line
        assert "pw" not in line and "secret" not in line
    finally:
        await proxy.close()
