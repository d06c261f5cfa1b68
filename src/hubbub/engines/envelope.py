"""Publications as the cluster engines carry them between nodes and keep them in Redis
streams: a JSON object without the offset (the engine sends the offset beside it, once it is
assigned), and the raw frame of a raw-room message, which must reach raw members byte for
byte with its frame type on every node.

The payload is ``{"d": <data as a JSON string>, "info": ..., "tags": ..., "time": ...}``: the
data's JSON text travels as a string, so it comes back exactly as published (a Protobuf
client's JSON keeps its spacing, byte for byte). Payloads written before (``"data"`` holding
the JSON value itself) are still read.

The raw frame travels as one JSON string beside the payload (never in history): ``"t:<text>"``
for a text frame, ``"b:<base64>"`` for a binary one (:func:`raw_text`, :func:`raw_from_text`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from hubbub.core.jsontext import dumps
from hubbub.core.types import Publication
from hubbub.engines.sqlite import info_from_text


def pub_payload(pub: Publication) -> str:
    """``pub`` as JSON text, without its offset (and without its raw frame)."""
    parts = [f'"d":{dumps(pub.data)}']
    if pub.info is not None:
        parts.append(f'"info":{pub.info.to_json()}')
    if pub.tags:
        parts.append(f'"tags":{dumps(pub.tags)}')
    if pub.time_ms:
        parts.append(f'"time":{pub.time_ms}')
    return "{" + ",".join(parts) + "}"


def raw_text(raw: str | bytes | None) -> str | None:
    """The raw frame as a JSON string (see the module docstring); None without one."""
    if raw is None:
        return None
    if isinstance(raw, bytes):
        return dumps("b:" + base64.b64encode(raw).decode())
    return dumps("t:" + raw)


def raw_from_text(value: Any) -> str | bytes | None:
    """The inverse of :func:`raw_text`, from the decoded JSON string; None for anything that
    is not one (a frame this node cannot rebuild is not delivered as something else)."""
    if not isinstance(value, str) or len(value) < 2 or value[1] != ":":
        return None
    kind, body = value[0], value[2:]
    if kind == "t":
        return body
    if kind == "b":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def pub_from_payload(payload: str, offset: int, raw: str | bytes | None = None) -> Publication:
    """The inverse of :func:`pub_payload`, with the offset (and the raw frame) put back."""
    return pub_from_obj(json.loads(payload), offset, raw)


def pub_from_obj(obj: dict[str, Any], offset: int, raw: str | bytes | None = None) -> Publication:
    """As :func:`pub_from_payload`, from the parsed JSON."""
    info = obj.get("info")
    data = obj.get("d")
    return Publication(
        data=data if isinstance(data, str) else dumps(obj.get("data")),
        offset=offset,
        info=info_from_text(dumps(info)) if info is not None else None,
        tags=obj.get("tags"),
        time_ms=int(obj.get("time", 0)),
        raw=raw,
    )
