"""The per-connection inbound rate limit: a token bucket kept in a connection's own slots.

Pure: no I/O and no clock of its own (the caller reads the monotonic clock once per frame).
`RateLimit` is the policy, one per node; the state lives in three slots of each `Connection`
(`Metered`), so an idle connection costs no extra object and a frame costs a few float ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

from .errors import MessageRejected

# A heartbeat carries nothing: a longer frame over the limit is not looked at.
HEARTBEAT_MAX_CHARS: Final = 512


class Metered(Protocol):
    """A connection's bucket. All zero means full, no free heartbeat used, no strikes."""

    rate_full_at: float  # when the bucket is full again (GCRA's theoretical arrival time)
    rate_beat_at: float  # when the next heartbeat may pass free
    rate_strikes: int  # frames rejected in a row


def may_be_heartbeat(text: str, hints: tuple[str, ...]) -> bool:
    """Cheap pre-check before looking at a frame over the limit to see if it is a heartbeat.

    ``hints``: the words every heartbeat of the sender's dialect contains (`Dialect`). Only a
    hint: the dialect's parse decides.
    """
    return len(text) <= HEARTBEAT_MAX_CHARS and any(word in text for word in hints)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` frames/s sustained, ``burst`` at once; ``close_after`` rejections in a row close.

    The bucket is a token bucket in its GCRA form: one float per connection, the time at which
    the bucket would be full again, instead of a token count and a timestamp. ``close_after``
    0 never closes (every frame over the limit still gets its error reply). Heartbeats pass
    free at most once per ``heartbeat_interval``; beyond that they count like any frame.
    """

    rate: float
    burst: int
    close_after: int = 10
    heartbeat_interval: float = 1.0
    interval: float = field(init=False, repr=False)  # seconds a token takes to come back
    _slack: float = field(init=False, repr=False)  # how far ahead full_at may be and admit

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.close_after < 0:
            raise ValueError("a rate limit needs rate > 0, burst >= 1 and close_after >= 0")
        interval = 1.0 / self.rate
        object.__setattr__(self, "interval", interval)
        # A token is left while full_at - now <= (burst - 1) * interval; the nanosecond keeps
        # float rounding of the sums from refusing the last token of a burst.
        object.__setattr__(self, "_slack", (self.burst - 1) * interval + 1e-9)

    @classmethod
    def from_settings(cls, rate: float, burst: int, close_after: int) -> RateLimit | None:
        """The limit, or None when ``rate`` or ``burst`` is 0 (no limit)."""
        if rate <= 0 or burst <= 0:
            return None
        return cls(rate, burst, close_after)

    def take(self, m: Metered, now: float) -> bool:
        """Charge one frame; True if the bucket had a token (and the strikes are reset)."""
        full_at = m.rate_full_at
        if full_at < now:
            full_at = now
        if full_at - now > self._slack:
            return False
        m.rate_full_at = full_at + self.interval
        if m.rate_strikes:
            m.rate_strikes = 0
        return True

    def heartbeat_due(self, m: Metered, now: float) -> bool:
        """True when a heartbeat now would pass free."""
        return now >= m.rate_beat_at

    def free_heartbeat(self, m: Metered, now: float, *, charged: bool) -> bool:
        """Let a heartbeat pass free if one is due; give back its token if it was ``charged``."""
        if now < m.rate_beat_at:
            return False
        m.rate_beat_at = now + self.heartbeat_interval
        if charged:
            m.rate_full_at -= self.interval
        return True

    def retry_after(self, m: Metered, now: float) -> float:
        """Seconds until the bucket holds a token again (0 if it holds one now)."""
        return max(0.0, m.rate_full_at - now - self._slack)

    def reject(self, m: Metered, now: float) -> MessageRejected:
        """Count one frame over the limit; the rejection its sender gets."""
        m.rate_strikes += 1
        wait = round(max(self.retry_after(m, now), 0.001), 3)
        return MessageRejected(
            "rate-limited",
            f"rate limit exceeded ({self.rate:g} messages/s, burst {self.burst}); "
            f"this message was not sent; retry in {wait:.3f} s",
            retry_after=wait,
        )

    def exhausted(self, m: Metered) -> bool:
        """True once ``close_after`` frames in a row were rejected: close the connection."""
        return 0 < self.close_after <= m.rate_strikes
