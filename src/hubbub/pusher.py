"""Signatures for an app's Pusher endpoints: public (``from hubbub.pusher import ...``).

A Pusher client asks the app's backend, not hubbub, whether it may subscribe to a private or
presence channel (pusher-js's ``channelAuthorization`` endpoint) and who it is
(``userAuthentication``, for ``pusher.signin()``). The backend decides; these functions sign
its answer with the app's ``secret`` exactly as the Pusher server libraries do, so hubbub
(or Pusher) accepts it::

    from hubbub.pusher import authorize_channel

    body = authorize_channel(KEY, SECRET, socket_id, channel_name,
                             presence={"user_id": "42", "user_info": {"name": "Ada"}})
    return json_response(body)

- :func:`authorize_channel`: ``{"auth": ...}``, with ``channel_data`` for presence channels
  and ``shared_secret`` for ``private-encrypted-`` ones (pass the master key,
  :func:`parse_master_key` of its base64 form);
- :func:`authenticate_user`: ``{"auth": ..., "user_data": ...}``;
- :func:`verify_webhook`: whether a Pusher webhook request (``X-Pusher-Key``,
  ``X-Pusher-Signature``) was signed by the app.

docs/pusher.md has the whole setup.
"""

from __future__ import annotations

from hubbub.dialects.pusher.signing import (
    authenticate_user,
    authorize_channel,
    parse_master_key,
    verify_webhook,
)

__all__ = ["authenticate_user", "authorize_channel", "parse_master_key", "verify_webhook"]
