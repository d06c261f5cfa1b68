"""The settings of how connections' output is written (``write_delay``): types, bounds and
descriptions.

:class:`hubbub.config.Settings` declares each key with one of these types and its default;
the meaning is written here, beside :mod:`hubbub.server.sending`, which reads the bound.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

#: Largest ``write_delay`` in seconds.
MAX_WRITE_DELAY: Final = 1.0

WriteDelay = Annotated[
    float,
    Field(
        ge=0,
        le=MAX_WRITE_DELAY,
        description=(
            "Seconds a connection's output may be held so that more messages share one write "
            "(Centrifugo's `client.write_delay`), e.g. 0.005 for 5 ms: the first message posted "
            "to an idle connection is written at most this long after, with all that is posted "
            "to it meanwhile (the Centrifugo protocol's replies too, as in Centrifugo without "
            "`reply_without_queue`). Fewer writes per CPU-second for connections that get "
            "several messages per delay, for up to this much latency; 0 (default) writes at "
            "the end of the loop turn. WebSockets and HTTP streams of the aiohttp server, "
            "not ASGI."
        ),
    ),
]
