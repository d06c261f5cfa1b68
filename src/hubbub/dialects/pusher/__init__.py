"""The Pusher Channels protocol (version 7): the pure core of a second dialect.

- :mod:`.signing`: every HMAC of the protocol (channel auth, user sign-in, HTTP API requests,
  webhooks) and the encrypted channels' shared secret; helpers for an app's auth endpoint.
- :mod:`.protocol`: channel names and kinds, error codes, limits, client frames parsed into
  typed messages, server events encoded to text.
- :mod:`.httpapi`: the bodies and queries of the HTTP API parsed into typed requests.
- :mod:`.errors`: the exceptions of the three.

None of them does I/O or reads a clock; the server wiring (WebSocket ``/app/{key}``, the
``/apps/{id}`` routes) is built on them. This ``__init__`` imports nothing.
"""
