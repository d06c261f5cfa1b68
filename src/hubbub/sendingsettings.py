"""The settings of how connections' output is written (``write_delay``, permessage-deflate):
types, bounds and descriptions.

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

Compression = Annotated[
    bool,
    Field(
        description=(
            "Offer permessage-deflate (RFC 7692), always with server_no_context_takeover: each "
            "message is compressed once per window and the frame is shared by every deflate "
            "connection, which hold no compressor of their own."
        )
    ),
]

CompressionWindowBits = Annotated[
    int,
    Field(
        ge=9,
        le=15,
        description=(
            "Largest permessage-deflate window (server_max_window_bits) the server compresses "
            "with. Memory: one compressor per window in use, not per connection, of about "
            "1.5 * 2**(bits + 2) bytes + 6 KiB (30 KiB at 12, 198 KiB at 15); a smaller window "
            "compresses long messages less."
        ),
    ),
]

CompressionMinSize = Annotated[
    int,
    Field(
        ge=0,
        description=(
            "Messages shorter than this many bytes (a coalesced frame counts whole) go to "
            "deflate connections uncompressed, without RSV1. "
            "Centrifugo's default is 0 (compress all); 64 here because below it deflate "
            "saves nothing (a 23-byte reply deflates to 25) and the client is spared an "
            "inflate."
        ),
    ),
]

CompressionLevel = Annotated[
    int,
    Field(
        ge=0,
        le=9,
        description=(
            "zlib level of permessage-deflate, 0 (stored) to 9 (smallest). 1 (fastest) like "
            "Centrifugo's default (BestSpeed of Go's compress/flate): a message is compressed "
            "once for all its subscribers, so a higher level costs per publication, not per "
            "delivery."
        ),
    ),
]
