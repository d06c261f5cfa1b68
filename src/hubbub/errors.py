"""hubbub's exceptions: one root, subclasses that carry the data to explain themselves.

::

    HubbubError
    ├── ConfigError        a setting is unknown or has a bad value (names the key and source)
    ├── ListenError        the server cannot listen on its address (port taken, no such address)
    ├── InvalidName        a room/channel name is refused (carries the name and the reason)
    ├── ClientError        an error reply to one client command (code, message, temporary)
    ├── DisconnectError    close a client connection with a protocol code and reason
    └── StoreError         an engine failed; callers answer with a temporary error

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


class ClientError(HubbubError):
    """An error reply to one client command (protocol codes 100-112, or an app's own >= 400).

    Raise it from a hook to refuse what the client asked; the client gets ``code`` and
    ``message`` and the connection stays.
    """

    def __init__(self, code: int, message: str | None = None, *, temporary: bool = False) -> None:
        from hubbub.core.codes import ERROR_MESSAGES, TEMPORARY_ERRORS

        self.code = int(code)
        self.message = message or ERROR_MESSAGES.get(self.code, "error")
        self.temporary = temporary or self.code in TEMPORARY_ERRORS
        super().__init__(f"{self.code}: {self.message}")


class DisconnectError(HubbubError):
    """Close the client's connection with a protocol disconnect code (3000-4999).

    Raise it from a hook to drop the client; ``code`` decides whether the SDK reconnects.
    """

    def __init__(self, code: int, reason: str) -> None:
        self.code = int(code)
        self.reason = reason
        super().__init__(f"disconnect {self.code}: {reason}")


class StoreError(HubbubError):
    """An engine (history, presence, broker) failed; the command gets a temporary error."""
