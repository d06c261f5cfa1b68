"""Who may open a connection now: the ``Origin`` allow-list and ``client_connection_limit``
counted over every edge.

:func:`origin_refusal` is the defence against cross-site WebSocket hijacking (and the HTTP
streams' check): with ``allowed_origins`` set, every ``Origin`` a request carries must be on
it; a request with none (not a browser) passes. Each edge answers a refusal with HTTP 403.

:class:`Admission` lets handshakes in while the node serves fewer than ``limit`` connections
(``None``: no limit), counting handshakes under way (between the check and ``node.attach``) as
connections, and refuses every one once the node is closing. It raises
:class:`AdmissionRefused` (with the text to answer with); each edge turns that into its own
refusal (HTTP 503 before the upgrade). No I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from hubbub.config import Settings
from hubbub.errors import HubbubError
from hubbub.node import Node
from hubbub.server.listener import LogThrottle, default_connection_limit, open_file_limit

log = logging.getLogger(__name__)


def origin_refusal(origins: Iterable[str], allowed: tuple[str, ...]) -> str | None:
    """Why a request carrying ``origins`` (its ``Origin`` headers) is refused (403), or None
    when it may go on: no allow-list, or every one of them on it."""
    if not allowed:
        return None
    for origin in origins:  # every one of them, if several
        if origin.strip().lower() not in allowed:
            return f"origin {origin!r} is not allowed\n"
    return None


def connection_limit(settings: Settings) -> int | None:
    """``client_connection_limit``, or the default derived from the open-file limit."""
    if settings.client_connection_limit is not None:
        return settings.client_connection_limit
    return default_connection_limit(open_file_limit())


class AdmissionRefused(HubbubError):
    """A handshake refused (HTTP 503): ``text`` says why, for the client."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Admission:
    """See the module docstring."""

    __slots__ = ("_node", "_throttle", "handshakes", "limit")

    def __init__(self, node: Node, limit: int | None) -> None:
        self._node = node
        self.limit = limit
        self.handshakes = 0
        self._throttle = LogThrottle(log)

    def enter(self) -> None:
        """Count a handshake in; raises :class:`AdmissionRefused` while shutting down or at
        the limit. Each successful call is paired with one :meth:`leave`."""
        node = self._node
        if node.closing:
            raise AdmissionRefused("shutting down\n")
        limit = self.limit
        if limit is not None and node.connection_count + self.handshakes >= limit:
            self._throttle.warning("refusing WebSocket handshakes: %d connections (limit)", limit)
            raise AdmissionRefused(f"too many connections: this node serves at most {limit}\n")
        self.handshakes += 1

    def leave(self) -> None:
        """The handshake counted by :meth:`enter` is over (its connection attached, or not)."""
        self.handshakes -= 1

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """``with admission.admitted(): conn = await accept(...)``, then attach the connection
        with no await in between (see :meth:`enter`)."""
        self.enter()
        try:
            yield
        finally:
            self.leave()
