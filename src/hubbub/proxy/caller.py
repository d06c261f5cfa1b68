"""The proxy's HTTP calls: one aiohttp session per node, made at the first call, closed when
the node stops (:meth:`ProxyCaller.close`).

Guarantees:

- A call takes at most ``proxy_timeout`` seconds, waiting for a pooled connection included;
  at most ``proxy_max_connections`` connections are open at once; a response body over
  :data:`MAX_RESPONSE_BYTES` is not read further.
- Redirects are not followed: a 3xx is another status (the forwarded headers, cookies
  included, never go to a URL other than the endpoint configured).
- Anything but a 200 whose body parses as the kind's response (a refused connection, a
  timeout, another status, a malformed body: :class:`hubbub.proxy.bodies.BadResponse`)
  raises :class:`ProxyFailed`, error 100 and temporary, as Centrifugo answers a failing
  backend: SDKs retry (a connect: reconnect with back-off). It is logged with the endpoint
  (user and password, query secrets left out): a malformed body each time (the backend's
  bug), an unreachable backend at most once per :data:`LOG_INTERVAL` per endpoint with the
  number of failures since.
- The backend's ``error`` and ``disconnect`` pass through as the parser raises them.
- Every call is counted by kind and outcome (:data:`OUTCOMES`; ``cancelled``: the caller
  gave up waiting, e.g. a connect past ``client_connect_timeout``) and its duration observed
  in a histogram per kind (:class:`ProxyStats`, read by ``/metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

from hubbub.config import Settings
from hubbub.core.codes import ErrorCode
from hubbub.core.histogram import Histogram
from hubbub.core.redact import redact_text
from hubbub.errors import ClientError, DisconnectError
from hubbub.proxy.bodies import KINDS, BadResponse

if TYPE_CHECKING:  # (imported at the first call: the ASGI edge runs without aiohttp loaded)
    import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The largest proxy response body read (bytes); a larger one is a failure.
MAX_RESPONSE_BYTES: Final = 16 * 1024 * 1024
#: Seconds between two log lines about the same unreachable endpoint.
LOG_INTERVAL: Final = 10.0
#: What a call ended with: the metrics' ``outcome`` label.
OUTCOMES: Final = (
    "ok", "error", "disconnect", "timeout", "unavailable", "malformed", "cancelled"
)  # fmt: skip
#: Seconds: 1 ms to the largest timeouts.
DURATION_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ProxyFailed(ClientError):
    """The backend could not be asked or gave no usable answer: error 100, temporary."""

    def __init__(self, why: str) -> None:
        super().__init__(ErrorCode.INTERNAL)
        self.why = why


class ProxyStats:
    """Proxy calls of one node: ``counts[(kind, outcome)]``, ``durations[kind]``."""

    __slots__ = ("counts", "durations")

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {(k, o): 0 for k in KINDS for o in OUTCOMES}
        self.durations: dict[str, Histogram] = {k: Histogram(DURATION_BUCKETS) for k in KINDS}

    def observe(self, kind: str, outcome: str, seconds: float) -> None:
        self.counts[kind, outcome] += 1
        self.durations[kind].observe(seconds)


def shown(endpoint: str) -> str:
    """``endpoint`` as logged: without user and password, secret query values redacted."""
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")))


class ProxyCaller:
    """A node's proxy calls (see the module docstring)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: Whether any proxy endpoint is configured (globally or by a namespace).
        self.in_use = any(getattr(settings, f"proxy_{kind}_endpoint") for kind in KINDS) or any(
            ns.proxy_subscribe or ns.proxy_publish or ns.proxy_sub_refresh
            for ns in (settings.channel, *settings.namespaces)
        )
        self.stats = ProxyStats()
        self._session: aiohttp.ClientSession | None = None
        self._failures: dict[str, tuple[float, int]] = {}  # endpoint -> (logged at, since)

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.settings.proxy_max_connections)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.settings.proxy_timeout),
                headers={"Content-Type": "application/json"},
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def ask(
        self,
        kind: str,
        endpoint: str,
        body: bytes,
        headers: Mapping[str, str],
        parse: Callable[[bytes], T],
    ) -> T:
        """POST ``body`` to ``endpoint`` with ``headers`` and parse the answer with
        ``parse`` (one of :mod:`hubbub.proxy.bodies`' parsers)."""
        started = time.monotonic()
        outcome = "ok"
        try:
            raw = await self._post(endpoint, body, headers)
            try:
                return parse(raw)
            except (ClientError, DisconnectError):
                raise  # the backend's error or disconnect
            except BadResponse as exc:
                outcome = "malformed"
                log.error("%s proxy %s: bad response: %s", kind, shown(endpoint), exc)
                raise ProxyFailed(f"bad response: {exc}") from None
            except Exception:  # a parser's bug: logged, still error 100 for the client
                outcome = "malformed"
                log.exception("%s proxy %s: response not read", kind, shown(endpoint))
                raise ProxyFailed("response not read") from None
        except DisconnectError:
            outcome = "disconnect"
            raise
        except ProxyFailed as exc:
            if outcome == "ok":
                outcome = "timeout" if exc.why == "timeout" else "unavailable"
                self._log_failure(kind, endpoint, exc.why)
            raise
        except ClientError:
            outcome = "error"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            self.stats.observe(kind, outcome, time.monotonic() - started)
            if outcome == "ok":
                self._failures.pop(endpoint, None)

    async def _post(self, endpoint: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        import aiohttp

        try:
            async with asyncio.timeout(self.settings.proxy_timeout):
                request = self._client().post(
                    endpoint, data=body, headers=headers, allow_redirects=False
                )
                async with request as resp:
                    if 300 <= resp.status < 400:
                        raise ProxyFailed(f"status {resp.status} (redirects are not followed)")
                    if resp.status != 200:
                        raise ProxyFailed(f"status {resp.status}")
                    if (resp.content_length or 0) > MAX_RESPONSE_BYTES:
                        raise ProxyFailed("response too large")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.content.iter_chunked(65536):
                        size += len(chunk)
                        if size > MAX_RESPONSE_BYTES:
                            raise ProxyFailed("response too large")
                        chunks.append(chunk)
                    return b"".join(chunks)
        except TimeoutError:
            raise ProxyFailed("timeout") from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            raise ProxyFailed(type(exc).__name__) from None

    def _log_failure(self, kind: str, endpoint: str, why: str) -> None:
        now = time.monotonic()
        logged_at, since = self._failures.get(endpoint, (-LOG_INTERVAL, 0))
        if now - logged_at < LOG_INTERVAL:
            self._failures[endpoint] = (logged_at, since + 1)
            return
        self._failures[endpoint] = (now, 0)
        more = f" ({since} more failures since the last line)" if since else ""
        log.warning("%s proxy %s failed: %s%s", kind, shown(endpoint), why, more)

    async def close(self) -> None:
        """Close the session (its pooled connections); a later call opens a new one."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
