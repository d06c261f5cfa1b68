"""The Centrifugo client protocol: the wing of one dialect.

- :mod:`.connection`: one WebSocket connection, frames in, commands to the client.
- :mod:`.codec`: what a wire format provides; :mod:`.jsonwire` (JSON, text frames) and
  :mod:`.protowire` (``centrifuge-protobuf``, binary frames) implement it, on the typed
  messages of :mod:`hubbub.core.messages`.
- :mod:`.client`: the session handler (commands -> node calls and hooks -> replies), with its
  state machine (:mod:`.session`), token deadlines (:mod:`.expiry`) and publish pipeline
  (:mod:`.pipeline`).
- :mod:`.reads`: presence, history and the subscribe result, shared with the server API.

This package's ``__init__`` imports nothing, so its modules import each other freely.
"""
