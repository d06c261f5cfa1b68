"""Validation of room and channel names.

A room name (``/rooms/{room}``, a URL path segment) is 1 to :data:`MAX_NAME_LENGTH` characters
from :data:`NAME_ALPHABET`: ASCII letters, digits and ``_ - . : @ = ,``. A channel name is what
Centrifugo accepts: 1 to :data:`MAX_NAME_LENGTH` printable ASCII characters, no space (so
``personal:#42``, ``dialog#42,43``, ``$secret``, ``a/b``, ``x|y~z;+!``). The channel core reads
the part before the first ``:`` as the namespace (``chat:room1`` is in namespace ``chat``), so
neither kind of name starts with ``:``.
"""

from __future__ import annotations

import re
from typing import Final

from hubbub.errors import InvalidName

MAX_NAME_LENGTH: Final = 255
NAME_ALPHABET: Final = "A-Z a-z 0-9 _ - . : @ = ,"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.@=,-][A-Za-z0-9_.:@=,-]*")
#: Printable ASCII without space, not starting with ':' (Centrifugo: "only ASCII symbols").
CHANNEL_ALPHABET: Final = "printable ASCII characters (no space)"
_CHANNEL_RE: Final = re.compile(r"[!-9;-~][!-~]*")


def validate_name(name: str, *, kind: str = "room") -> str:
    """Return ``name`` if it is a valid room/channel name, else raise :class:`InvalidName`.

    The error's message says what is wrong (empty, too long, which character) so that it can be
    shown to the client as it is.
    """
    if not name:
        raise InvalidName(name, f"{kind} name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            name, f"{kind} name is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    channel = kind == "channel"
    pattern = _CHANNEL_RE if channel else _NAME_RE
    alphabet = CHANNEL_ALPHABET if channel else NAME_ALPHABET
    if pattern.fullmatch(name) is None:
        if name[0] == ":":
            raise InvalidName(name, f"{kind} name must not start with ':'")
        bad = next(ch for ch in name if pattern.fullmatch("a" + ch) is None)
        raise InvalidName(name, f"{kind} name contains {bad!r}; allowed characters are {alphabet}")
    return name
