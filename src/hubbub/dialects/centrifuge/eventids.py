"""SSE event ids of ``uni_sse``: where each server-side subscription of the stream stands, so
that a reconnecting ``EventSource`` (its ``Last-Event-ID`` header) recovers what it missed.

An event that moves a position (a publication with an offset, the connect push, a subscribe
or unsubscribe push: :class:`hubbub.dialects.centrifuge.uniwire.Positioned`) carries
``id: <JSON>``, the compact JSON object ``{"<channel>": [<offset>, "<epoch>"], ...}`` of every
channel of the stream with a known position (recoverable or positioned subscriptions) after
that event. Other events carry no id, so the browser keeps the last one. Guarantees:

- Bounded: at most :data:`MAX_CHANNELS` channels and :data:`MAX_ID_BYTES` bytes; a stream
  whose positions do not fit sends an empty id (the browser then sends no ``Last-Event-ID``
  and the stream reconnects without recovery, as a connect without ``subs`` would).
- The id is ASCII JSON on one line (no CR, LF or NUL, which SSE cannot carry in a field).
- :func:`parse_event_id` never raises: a header that is not such an object (too long, not
  JSON, wrong types) gives no positions. A forged id only asks to recover channels the
  connection is subscribed to by the server anyway, as a connect's ``subs`` may.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from hubbub.core.jsontext import NotJSON, dumps, loads
from hubbub.dialects.centrifuge.uniwire import Positioned

#: Most channels whose positions one event id holds.
MAX_CHANNELS: Final = 16
#: Most bytes of one event id (and of a ``Last-Event-ID`` that is read).
MAX_ID_BYTES: Final = 2048
MAX_OFFSET: Final = 2**64 - 1


class Positions:
    """The stream positions of one ``uni_sse`` connection, as its events reveal them."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, tuple[int, str]] = {}

    def note(self, message: Positioned) -> None:
        """Apply what ``message`` says about positions."""
        known = self._known
        if message.dropped is not None:
            known.pop(message.dropped, None)
        for channel, (offset, epoch) in message.positions.items():
            if epoch is not None:
                known[channel] = (offset, epoch)
            elif channel in known:
                old_offset, old_epoch = known[channel]
                known[channel] = (max(offset, old_offset), old_epoch)

    def event_id(self) -> str:
        """The id of the event just noted ("" when the positions do not fit the bounds)."""
        known = self._known
        if not known or len(known) > MAX_CHANNELS:
            return ""
        text = dumps({channel: [offset, epoch] for channel, (offset, epoch) in known.items()})
        return text if len(text) <= MAX_ID_BYTES else ""


def parse_event_id(header: str) -> dict[str, tuple[int, str]]:
    """The positions a ``Last-Event-ID`` names; empty for anything but an id of this module."""
    if not header or len(header) > MAX_ID_BYTES:
        return {}
    try:
        value: Any = loads(header)
    except NotJSON:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_CHANNELS:
        return {}
    positions: dict[str, tuple[int, str]] = {}
    for channel, position in value.items():
        if (
            not isinstance(position, list)
            or len(position) != 2
            or type(position[0]) is not int
            or not 0 <= position[0] <= MAX_OFFSET
            or type(position[1]) is not str
            or not position[1]
        ):
            return {}
        positions[channel] = (position[0], position[1])
    return positions


class _Memo:
    """The bytes of the last message framed, by identity: the fan-out posts one message
    object to every member of a wire in a row, so each format frames a publication once, not
    once per member. Holds one message at a time."""

    __slots__ = ("_data", "_frame", "_message")

    def __init__(self, frame: Callable[[str], bytes]) -> None:
        self._frame = frame
        self._message: str | bytes | None = None
        self._data = b""

    def __call__(self, message: str | bytes) -> bytes:
        if message is not self._message:
            text = message if isinstance(message, str) else message.decode()
            self._data = self._frame(text)
            self._message = message
        return self._data


_sse_data = _Memo(lambda text: f"data: {text}\n\n".encode())
_line = _Memo(lambda text: f"{text}\n".encode())


class SseFraming:
    """Messages of one ``uni_sse`` stream as SSE events: ``data: <push>``, with an ``id:``
    line before it for the events that move a position."""

    __slots__ = ("_positions",)

    def __init__(self) -> None:
        self._positions = Positions()

    def __call__(self, message: str | bytes) -> bytes:
        data = _sse_data(message)
        if isinstance(message, Positioned):
            self._positions.note(message)
            return f"id: {self._positions.event_id()}\n".encode() + data
        return data


def sse_framing(message: str | bytes) -> bytes:
    """Messages of an emulated ``sse`` stream: one SSE event per reply or push, no ids (the
    SDK recovers by itself)."""
    return _sse_data(message)


def line_framing(message: str | bytes) -> bytes:
    """Messages of one ``uni_http_stream`` stream: one JSON push per line."""
    return _line(message)
