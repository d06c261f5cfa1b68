"""Centrifugo's own claims in hubbub's tokens, read into typed values (the JWT itself, its keys
and its time claims are :mod:`hubbub.auth`'s business).

Connection tokens:

- ``info`` (any JSON value) or ``b64info`` (base64 of JSON text; used instead of ``info`` when
  it is a non-empty string): the connection's info, shown to others in presence, join/leave
  and its publications.
- ``meta``: a JSON object kept with the connection and never sent to any client (hooks see it
  as ``meta`` in their contexts).
- ``channels`` (a list of channel names) and ``subs`` (an object of channel -> subscribe
  options): server-side subscriptions made at connect. As in Centrifugo, a non-empty ``subs``
  replaces ``channels``, which is then ignored.

Subscribe options (a ``subs`` entry, or the subscription token itself): ``info`` /
``b64info`` (the subscriber's chan info), ``data`` / ``b64data`` (data for the client in the
subscribe reply; ``b64data`` wins when non-empty) and ``override`` (``{"presence": {"value":
false}, ...}``: channel options changed for this one subscription, see :class:`Override`).

Every claim read here must have its type: anything else (a string for an object, a number for
a boolean, base64 that does not decode, bytes that are not UTF-8 JSON text, NaN) raises
:class:`ClaimError`, which the verifier turns into an invalid token (3500). Base64 must hold
JSON text because info and data are JSON inside hubbub, shared by JSON and Protobuf clients
(Protobuf clients get the decoded bytes as they are). Keys this module does not know are
ignored, as Centrifugo's decoder ignores them.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hubbub.config import ChannelOptions
from hubbub.core.jsontext import NotJSON, dumps, loads


class ClaimError(ValueError):
    """A claim of the wrong type or shape; the message names it."""


@dataclass(frozen=True, slots=True)
class Override:
    """Channel options a token changes for one subscription; None keeps the namespace's.

    ``presence``: whether the subscriber enters the channel's presence. ``join_leave``:
    whether its join and leave are announced. ``force_push_join_leave``: whether it gets
    every join and leave of the channel, asked or not. ``force_recovery``: whether its
    subscription is recoverable. ``force_positioning``: whether its stream position is
    watched (see docs/protocol.md, Positioning).
    """

    presence: bool | None = None
    join_leave: bool | None = None
    force_push_join_leave: bool | None = None
    force_recovery: bool | None = None
    force_positioning: bool | None = None

    def apply(self, options: ChannelOptions) -> ChannelOptions:
        """``options`` with this override's values of the namespace options it covers."""
        changes = {
            name: value
            for name in _OVERRIDES
            if (value := getattr(self, name)) is not None and value != getattr(options, name)
        }
        return options.model_copy(update=changes) if changes else options


#: The override fields, each a namespace option of the same name.
_OVERRIDES: Final = tuple(f.name for f in dataclasses.fields(Override))


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """What a token says about one subscription. ``info`` and ``data`` are JSON text (None:
    none given)."""

    info: str | None = None
    data: str | None = None
    override: Override | None = None


NO_OPTIONS: Final = SubscribeOptions()


def info(claims: Mapping[str, Any], where: str = "") -> str | None:
    """The info in ``claims`` as JSON text: ``b64info`` when it is a non-empty string, else
    ``info``; None when neither is given (``where`` prefixes the names in errors)."""
    b64 = _b64_json(claims, "b64info", where)
    if b64 is not None:
        return b64
    value = claims.get("info")
    return None if value is None else _json_text(value, where + "info")


def meta(claims: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``meta`` object of a connection token; None when absent."""
    value = claims.get("meta")
    if value is None:
        return None
    if type(value) is not dict:
        raise ClaimError("meta must be a JSON object")
    _json_text(value, "meta")
    return value


def server_side(claims: Mapping[str, Any]) -> tuple[list[str], dict[str, SubscribeOptions]]:
    """A connection token's server-side subscriptions: every channel (in the token's order,
    once each) and the options of those that came with some. A non-empty ``subs`` replaces
    ``channels``."""
    subs_claim = claims.get("subs")
    subs: dict[str, SubscribeOptions] = {}
    if subs_claim is not None:
        if type(subs_claim) is not dict:
            raise ClaimError("subs must be an object of channel options")
        for channel, entry in subs_claim.items():
            if type(entry) is not dict:
                raise ClaimError(f"subs: the options of {channel!r} must be an object")
            subs[channel] = subscribe_options(entry, f"subs.{channel}.")
    if subs:
        return list(subs), {channel: o for channel, o in subs.items() if o != NO_OPTIONS}
    channels = claims.get("channels")
    if channels is None:
        return [], {}
    if type(channels) is not list or not all(type(c) is str for c in channels):
        raise ClaimError("channels must be a list of strings")
    return list(dict.fromkeys(channels)), {}


def subscribe_options(claims: Mapping[str, Any], where: str = "") -> SubscribeOptions:
    """The subscribe options in ``claims`` (a subscription token's, or a ``subs`` entry;
    ``where`` prefixes the names in errors)."""
    data = _b64_json(claims, "b64data", where)
    if data is None and claims.get("data") is not None:
        data = _json_text(claims["data"], where + "data")
    return SubscribeOptions(info(claims, where), data, _override(claims, where))


def _b64_json(claims: Mapping[str, Any], name: str, where: str) -> str | None:
    """The JSON text in base64 claim ``name``; None when absent or empty."""
    value = claims.get(name)
    if value is None or value == "":
        return None
    if type(value) is not str:
        raise ClaimError(f"{where}{name} must be a base64 string")
    try:
        text = base64.b64decode(value, validate=True).decode()
        loads(text)
    except (binascii.Error, ValueError):  # UnicodeDecodeError and NotJSON included
        raise ClaimError(f"{where}{name} must be base64 of JSON text (UTF-8)") from None
    return text


def _json_text(value: Any, name: str) -> str:
    """``value`` (parsed from the token) as JSON text; NaN, Infinity, lone surrogates and
    nesting too deep for JSON clients are refused."""
    try:
        text = dumps(value)
        loads(text)
    except (ValueError, NotJSON):
        raise ClaimError(f"{name} is not usable JSON") from None
    return text


def override(raw: Any) -> Override | None:
    """An override object as the server API's ``subscribe`` takes it (None: none);
    ClaimError when it is not one."""
    return _override({"override": raw}, "")


def _override(claims: Mapping[str, Any], where: str) -> Override | None:
    raw = claims.get("override")
    if raw is None:
        return None
    if type(raw) is not dict:
        raise ClaimError(f"{where}override must be an object")
    values: dict[str, bool] = {}
    for name in _OVERRIDES:
        box = raw.get(name)
        if box is None:
            continue
        # {"value": true}; {} and {"value": null} are false, as Centrifugo's decoder has it.
        value = box.get("value") if type(box) is dict else ""
        if value is None:
            value = False
        if type(value) is not bool:
            raise ClaimError(f'{where}override.{name} must be {{"value": true|false}}')
        values[name] = value
    return Override(**values) if values else None
