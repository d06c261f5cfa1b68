"""A strict decoder of HTTP/1.1's chunked transfer coding (RFC 9112 §7.1), for tests that
check what the server's streams put on the wire."""

from __future__ import annotations

_HEX = b"0123456789abcdefABCDEF"


def dechunk(data: bytes) -> tuple[list[bytes], bool]:
    """The data of each chunk of the body ``data``, and whether the last chunk (with an empty
    trailer section and nothing after it) came. Raises ``AssertionError`` at the first byte
    that breaks the coding: a size line that is not bare hex (no sign, prefix, space or
    extension), a chunk's data not followed by CRLF."""
    chunks: list[bytes] = []
    pos = 0
    while pos < len(data):
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return chunks, False  # a size line not complete yet
        size_line = data[pos:eol]
        assert size_line and not size_line.strip(_HEX), f"bad chunk size line {size_line!r}"
        size = int(size_line, 16)
        if size == 0:
            assert data[eol:] == b"\r\n\r\n", f"after the last chunk: {data[eol:]!r}"
            return chunks, True
        start = eol + 2
        if len(data) < start + size + 2:
            return chunks, False  # a chunk not complete yet
        assert data[start + size : start + size + 2] == b"\r\n", "no CRLF after a chunk"
        chunks.append(data[start : start + size])
        pos = start + size + 2
    return chunks, False
