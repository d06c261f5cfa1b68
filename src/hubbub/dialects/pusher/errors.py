"""The exceptions of the Pusher dialect's pure core, under :class:`hubbub.errors.HubbubError`.

::

    PusherError
    ├── ProtocolError    a client frame was refused: answer pusher:error {code, message}
    └── ApiError         an HTTP API request was refused: answer its status and message (text)
        └── SignatureError   its signature (auth_key, timestamp, body_md5, auth_signature)

Every message is fit to show the client: none contains a secret.
"""

from __future__ import annotations

from hubbub.errors import HubbubError


class PusherError(HubbubError):
    """Root of the Pusher dialect's errors."""


class ProtocolError(PusherError):
    """A client frame was refused.

    ``code`` is a protocol code (4000-4299, :class:`~.protocol.ErrorCode`) when the connection
    must close with it, or ``None`` for an error that leaves the connection open (a bad
    subscribe, a refused client event), as ``pusher:error`` allows.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        self.message = message
        self.code = code
        super().__init__(message if code is None else f"{code}: {message}")


class ApiError(PusherError):
    """An HTTP API request was refused with ``status`` (400, 401, 413, ...) and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")


class SignatureError(ApiError):
    """The request's authentication failed (401; 400 when its query cannot be read)."""
