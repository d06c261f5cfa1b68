"""The pure core: no I/O, no clock reads, no asyncio.

Rules of this package: every function takes what it needs (bytes, names, ``now``) as arguments
and returns values or raises :class:`hubbub.errors.HubbubError` subclasses. The edges
(``hubbub.server``) and the node (``hubbub.node``) do the I/O around it.
"""
