"""Engines: the broker (fan-out between nodes + history) and presence, behind small protocols."""
