"""Publications as the cluster engines carry them between nodes: the protocol's Publication
JSON without the offset (the engine sends the offset beside it, once it is assigned)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hubbub.core.protocol import dumps
from hubbub.core.types import Publication
from hubbub.engines.sqlite import info_from_text


def pub_payload(pub: Publication) -> str:
    """``pub`` as JSON text, without its offset."""
    return replace(pub, offset=0).to_json()


def pub_from_payload(payload: str, offset: int) -> Publication:
    """The inverse of :func:`pub_payload`, with the offset put back."""
    return pub_from_obj(json.loads(payload), offset)


def pub_from_obj(obj: dict[str, Any], offset: int) -> Publication:
    """As :func:`pub_from_payload`, from the parsed JSON."""
    info = obj.get("info")
    return Publication(
        data=dumps(obj.get("data")),
        offset=offset,
        info=info_from_text(dumps(info)) if info is not None else None,
        tags=obj.get("tags"),
        time_ms=int(obj.get("time", 0)),
    )
