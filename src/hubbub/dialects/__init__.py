"""Dialects translate one wire protocol into node calls: raw (echo, rooms), centrifuge (the
Centrifugo client protocol) and pusher (the Pusher Channels protocol), each a wing of its own
on the same node."""
