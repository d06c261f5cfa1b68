"""hubbub's exceptions: one root, subclasses that carry the data to explain themselves.

::

    HubbubError
    ├── ConfigError        a setting is unknown or has a bad value (names the key and source)
    ├── ListenError        the server cannot listen on its address (port taken, no such address)
    └── InvalidName        a room/channel name is refused (carries the name and the reason)

Errors of libraries underneath (aiohttp, pydantic, tomllib) are translated at the boundary
into these, so callers never have to catch another library's exceptions.
"""

from __future__ import annotations


class HubbubError(Exception):
    """Root of every exception hubbub raises on purpose."""


class ConfigError(HubbubError):
    """Settings were refused. ``problems`` lists one line per bad key, naming the key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


class ListenError(HubbubError):
    """The server could not bind its listening socket."""

    def __init__(self, host: str, port: int, cause: OSError) -> None:
        self.host = host
        self.port = port
        super().__init__(f"cannot listen on {host}:{port}: {cause.strerror or cause}")


class InvalidName(HubbubError):
    """A room or channel name was refused; ``reason`` is fit to show the client."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(reason)
