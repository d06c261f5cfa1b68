"""Publications as the cluster engines carry them between nodes and keep them in Redis
streams: a JSON object without the offset (the engine sends the offset beside it, once it is
assigned), and, for a raw-room message, the kind of its frame, from which raw members on every
node rebuild the same frame type and bytes out of the data (``Publication.frame``).

The payload is ``{"d": <data as a JSON string>, "info": ..., "tags": ..., "time": ...,
"delta": true}``: the data's JSON text travels as a string, so it comes back exactly as
published (a Protobuf client's JSON, or a raw member's JSON text, keeps its spacing byte for
byte). Payloads written before (``"data"`` holding the JSON value itself) are still read. The
frame kind travels as a JSON string beside the payload (never in history): :func:`frame_text`,
:func:`frame_from_text`.

``"delta": true`` (present only for a publication marked delta, ``Publication.delta``) is in the
payload rather than beside it, so that nodes of the version before, which read only the keys
they know, still deliver such a publication (in full); they never send the key, which reads as
not marked. A Redis stream keeps it with the payload; history reads leave it out.
"""

from __future__ import annotations

import json
from typing import Any, Final

from hubbub.core.jsontext import dumps
from hubbub.core.types import FRAME_BINARY, FRAME_KINDS, FRAME_STRING, FRAME_TEXT, Publication
from hubbub.engines.sqlite import info_from_text


def pub_payload(pub: Publication) -> str:
    """``pub`` as JSON text, without its offset (and without its frame kind)."""
    parts = [f'"d":{dumps(pub.data)}']
    if pub.info is not None:
        parts.append(f'"info":{pub.info.to_json()}')
    if pub.tags:
        parts.append(f'"tags":{dumps(pub.tags)}')
    if pub.time_ms:
        parts.append(f'"time":{pub.time_ms}')
    if pub.delta:
        parts.append('"delta":true')
    return "{" + ",".join(parts) + "}"


def frame_text(frame: str) -> str | None:
    """The frame kind as a JSON string; None for :data:`FRAME_TEXT` (sent as nothing)."""
    return None if frame == FRAME_TEXT else dumps(frame)


def frame_from_text(value: Any) -> str:
    """The inverse of :func:`frame_text`, from the decoded JSON value; anything that is not a
    known kind is :data:`FRAME_TEXT` (the data as a text frame: never bytes made up).

    From a node of the version before (issue 12), which sent the frame itself (``"b:..."``,
    ``"t:..."``) beside data of the same meaning: binary is :data:`FRAME_BINARY`; text is
    :data:`_LEGACY_TEXT`, which :func:`pub_from_obj` resolves by the data (a JSON string: the
    text was not JSON; else the JSON text, which that version had re-encoded compactly)."""
    if isinstance(value, str):
        if value in FRAME_KINDS:
            return value
        if value.startswith("b:"):
            return FRAME_BINARY
        if value.startswith("t:"):
            return _LEGACY_TEXT
    return FRAME_TEXT


#: Stream offsets are 64-bit signed integers in every store.
OFFSET_END: Final = 2**63

#: A text frame from the version before, until the data says which kind it is.
_LEGACY_TEXT: Final = "t:"


def pub_from_payload(
    payload: str, offset: int, frame: str = FRAME_TEXT, *, history: bool = False
) -> Publication:
    """The inverse of :func:`pub_payload`, with the offset (and the frame kind) put back;
    ``history``: read from a stream, where the delta mark is not kept (never marked)."""
    return pub_from_obj(json.loads(payload), offset, frame, history=history)


def pub_from_obj(
    obj: dict[str, Any], offset: int, frame: str = FRAME_TEXT, *, history: bool = False
) -> Publication:
    """As :func:`pub_from_payload`, from the parsed JSON. ValueError for what no node sends
    (engines' channels take messages from anyone who may publish there): an offset outside
    the stores' range ``[0, 2**63)``, tags that are not an object of strings."""
    if not 0 <= offset < OFFSET_END:
        raise ValueError(f"offset {offset} is out of range")
    tags = obj.get("tags")
    if tags is not None and not (type(tags) is dict and all(type(v) is str for v in tags.values())):
        raise ValueError("tags must be an object of strings")
    info = obj.get("info")
    data = obj.get("d")
    if not isinstance(data, str):
        data = dumps(obj.get("data"))
    if frame == _LEGACY_TEXT:
        frame = FRAME_STRING if data.startswith('"') else FRAME_TEXT
    return Publication(
        data=data,
        offset=offset,
        info=info_from_text(dumps(info)) if info is not None else None,
        tags=tags,
        time_ms=int(obj.get("time", 0)),
        frame=frame,
        delta=not history and obj.get("delta") is True,
    )
