"""Dialects translate one wire protocol into node calls: raw (echo, rooms), later centrifuge."""
