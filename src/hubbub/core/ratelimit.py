"""Per-connection rate limits: pure, time is passed in.

A connection (channel protocol or raw room member) has three budgets, all refilled
continuously from one timestamp:

- **Commands**: ``command_rate`` per second up to ``command_burst``. An admitted command takes
  one; a refused one takes nothing.
- **Bytes**: ``byte_rate`` per second up to ``byte_burst``. Every frame's size is taken from
  the balance when the frame arrives, admitted or not (the server has read and parsed it
  either way), and the balance never drops below ``-byte_burst``. A command is refused while
  the balance is negative; the first command of a frame is judged *before* its own frame is
  taken, so one frame of any size the server accepts gets through after a pause, whatever the
  burst, and the commands after it in the same frame wait until the balance is paid back.
- **Refusals**: an allowance of ``refusal_limit`` refusals, refilled at ``refusal_limit /
  refusal_window`` per second. Every refusal (command or bytes) takes one; a refusal that
  finds the allowance empty ends the connection (3013 for the channel protocol, 1008 for a
  raw room member).

The sustained-abuse rule that follows, whatever the refusals are interleaved with:

- a burst of at most ``refusal_limit`` refusals never disconnects;
- refusals arriving on average slower than ``refusal_limit / refusal_window`` per second
  never disconnect;
- refusals sustained at ``r`` per second above that drain rate ``d`` disconnect within
  ``refusal_limit / (r - d)`` seconds (a flood of 15,000 refusals/s: within 7 ms with the
  defaults 100 per 10 s).

Admitted commands do not reset anything (the old "strikes in a row" counter did, so a flood
that met one refill per millisecond was never disconnected).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol


class Verdict(IntEnum):
    """What to do with one command."""

    ADMIT = 0
    REFUSE = 1  # error 111 (the channel protocol) or dropped (raw rooms)
    DISCONNECT = 2  # sustained abuse: 3013, or 1008 for raw rooms


class LimitSettings(Protocol):
    """The settings :meth:`Limits.of` reads (:class:`hubbub.config.Settings` has them)."""

    @property
    def client_command_rate(self) -> float: ...
    @property
    def client_command_burst(self) -> int: ...
    @property
    def client_byte_rate(self) -> float: ...
    @property
    def client_byte_burst(self) -> int: ...
    @property
    def client_refusal_limit(self) -> int: ...
    @property
    def client_refusal_window(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Limits:
    """The budgets of every connection of a node (one shared, immutable object)."""

    command_rate: float
    command_burst: float
    byte_rate: float
    byte_burst: float
    refusal_limit: float
    refusal_rate: float  # refusals per second given back to the allowance

    @classmethod
    def of(cls, settings: LimitSettings) -> Limits:
        return cls(
            command_rate=float(settings.client_command_rate),
            command_burst=float(settings.client_command_burst),
            byte_rate=float(settings.client_byte_rate),
            byte_burst=float(settings.client_byte_burst),
            refusal_limit=float(settings.client_refusal_limit),
            refusal_rate=settings.client_refusal_limit / settings.client_refusal_window,
        )


def message_size(message: str | bytes) -> int:
    """The size in bytes of a received WebSocket message (UTF-8 for text)."""
    if isinstance(message, bytes) or message.isascii():  # isascii is O(1) on str
        return len(message)
    return len(message.encode("utf-8", "surrogatepass"))


class RateLimiter:
    """One connection's budgets (see the module docstring); starts full."""

    __slots__ = ("allowance", "bytes", "commands", "limits", "updated")

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.updated = now
        self.commands = limits.command_burst
        self.bytes = limits.byte_burst
        self.allowance = limits.refusal_limit

    def admit(self, now: float, size: int = 0, commands: int = 1) -> Verdict:
        """Judge a command arriving at ``now``. ``size``: the bytes it brings (its frame's
        size for the first command of a frame, 0 for the others); taken whatever the verdict.
        ``commands``: 0 for what is never refused (a pong), whose bytes still count."""
        self._refill(now)
        admitted = commands == 0 or (self.commands >= commands and self.bytes >= 0.0)
        if size:
            floor = -self.limits.byte_burst
            balance = self.bytes - size
            self.bytes = balance if balance > floor else floor
        if admitted:
            self.commands -= commands
            return Verdict.ADMIT
        if self.allowance >= 1.0:
            self.allowance -= 1.0
            return Verdict.REFUSE
        return Verdict.DISCONNECT

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed <= 0.0:
            return  # a clock going back takes nothing away and gives nothing
        self.updated = now
        limits = self.limits
        commands = self.commands + elapsed * limits.command_rate
        self.commands = commands if commands < limits.command_burst else limits.command_burst
        balance = self.bytes + elapsed * limits.byte_rate
        self.bytes = balance if balance < limits.byte_burst else limits.byte_burst
        allowance = self.allowance + elapsed * limits.refusal_rate
        self.allowance = allowance if allowance < limits.refusal_limit else limits.refusal_limit
