"""What ``hubbub bench`` leaves in history: the fan-out scenario publishes into a real channel,
and a channel with history would keep every publication of the run.

:func:`guard` is asked before the run: a channel the server keeps no history for (error 108
"not available" to ``history``) is measured as it is; for one with history the bench needs
the server API key, and then removes the channel's history after the run
(:meth:`Guard.clean`, the server API's ``history_remove``), or ``--keep-history``. A channel
that already holds publications is refused unless ``--keep-history``: removing the bench's
publications would remove those too. The probe uses the server API when a key is given,
else the client protocol's ``history`` (which the channel's permissions may refuse: then the
bench cannot tell, and asks for the key).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from hubbub.errors import HubbubError

#: The protocol's "not available": the channel keeps no history.
NOT_AVAILABLE = 108


class BenchRefused(HubbubError):
    """The bench would leave publications in a channel's history; the message says what to do."""


def http_url(url: str) -> str:
    """The server's http(s) base URL for a bench URL (http, https, ws, wss; any path)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


async def _api(url: str, key: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/api/{method}", json=params, headers={"X-API-Key": key}) as resp,
    ):
        if resp.status != 200:
            raise HubbubError(f"{url}/api/{method}: HTTP {resp.status}: {await resp.text()}")
        body: dict[str, Any] = await resp.json(content_type=None)
        return body


async def _client_history(ws_url: str, token: str, channel: str) -> dict[str, Any]:
    connect: dict[str, Any] = {"token": token} if token else {}
    commands = [{"id": 1, "connect": connect}, {"id": 2, "history": {"channel": channel}}]
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        await ws.send_str("\n".join(json.dumps(c) for c in commands))
        while True:
            msg = await ws.receive(timeout=10)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise HubbubError(f"{ws_url}: closed {ws.close_code} before history answered")
            for line in msg.data.split("\n"):
                reply: dict[str, Any] = json.loads(line)
                if reply.get("id") == 1 and "error" in reply:
                    return reply
                if reply.get("id") == 2:
                    return reply


async def top(url: str, ws_url: str, channel: str, token: str, key: str | None) -> int | None:
    """``channel``'s top offset when the server keeps history for it, else None."""
    if key:
        reply = await _api(http_url(url), key, "history", {"channel": channel, "limit": 0})
    else:
        reply = await _client_history(ws_url, token, channel)
    error = reply.get("error")
    if error is None:
        return int(reply.get("result", reply.get("history", {})).get("offset", 0))
    if error.get("code") == NOT_AVAILABLE:
        return None
    raise BenchRefused(
        f"cannot tell whether {channel!r} keeps history (history: error {error.get('code')} "
        f"{error.get('message')}); give the server API key (--api-key or HUBBUB_API_KEY) so "
        "that hubbub bench can check and remove what it stores, or pass --keep-history"
    )


@dataclass
class Guard:
    """The bench channel's history before the run: ``before`` its top offset (None: the server
    keeps none); ``remove``: the bench removes it afterwards."""

    url: str
    channel: str
    key: str | None
    before: int | None
    remove: bool

    async def clean(self) -> tuple[str, str]:
        """After the run: remove what the bench stored (when ``remove``); the row saying so."""
        if self.before is None:
            return ("history", f"none: {self.channel} keeps no history")
        if not self.remove or not self.key:
            return ("history", f"left in {self.channel} (--keep-history)")
        url = http_url(self.url)
        after = await _api(url, self.key, "history", {"channel": self.channel, "limit": 0})
        stored = int(after.get("result", {}).get("offset", 0)) - self.before
        await _api(url, self.key, "history_remove", {"channel": self.channel})
        return ("history", f"removed the {stored:,} publications stored in {self.channel}")


async def guard(
    url: str, ws_url: str, channel: str, token: str, key: str | None, keep: bool
) -> Guard:
    """Check ``channel`` before a fan-out run (see the module docstring); raises
    :class:`BenchRefused` when the run would leave publications behind unasked."""
    before = await top(url, ws_url, channel, token, key)
    if before is not None and not keep:
        if not key:
            raise BenchRefused(
                f"{channel!r} keeps history on this server, so the bench's publications would "
                "stay in it: give the server API key (--api-key or HUBBUB_API_KEY) and "
                "hubbub bench removes them afterwards, use a --channel without history, or "
                "pass --keep-history"
            )
        if before > 0:
            raise BenchRefused(
                f"{channel!r} already holds publications (top offset {before}); removing the "
                "bench's would remove them too: use another --channel, or --keep-history"
            )
    return Guard(url, channel, key, before, remove=before is not None and not keep)
