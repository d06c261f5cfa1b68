"""Centrifugo's HTTP proxy: connect, refresh, subscribe, publish, sub_refresh and rpc events
POSTed to the application's backend, in any language, with Centrifugo's JSON bodies.

Two parts, one concept each:

- :mod:`hubbub.proxy.bodies` (pure): request bodies built from typed values, responses parsed
  into typed answers; a backend's ``error`` and ``disconnect`` become
  :class:`hubbub.errors.ClientError` / :class:`hubbub.errors.DisconnectError` as they are, a
  malformed response :class:`hubbub.proxy.bodies.BadResponse`.
- :mod:`hubbub.proxy.caller` (I/O): one aiohttp session per node with a bounded pool, the
  ``proxy_timeout``, the forwarded headers; every failure is
  :class:`hubbub.proxy.caller.ProxyUnavailable`; requests counted by kind and outcome.

The Centrifugo dialect decides when to ask (:mod:`hubbub.dialects.centrifuge.proxying`).
"""
