"""Log lines that anonymous clients can trigger, at most once per interval per key.

A client can repeat what makes a node log (a refused connection, a bad frame) thousands of
times a second; one line per interval, with how many were suppressed since, keeps the log
readable and its disk bounded. Keys name the kind of line, never a client-chosen value, so
the table stays small.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

LOG_EVERY = 10.0  # seconds between two lines of one key


class ThrottledLog:
    """``log(key, level, msg, *args)``: the first line of a key at once, then one per
    ``interval``; a line after suppressed ones ends with their count."""

    __slots__ = ("_clock", "_interval", "_logger", "_state")

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_EVERY,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._state: dict[str, list[float]] = {}  # key -> [last logged at, suppressed since]

    def log(self, key: str, level: int, msg: str, *args: Any) -> bool:
        """Log unless ``key`` was logged less than ``interval`` ago; True if it was logged."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        state = self._state.get(key)
        if state is None:
            self._state[key] = [now, 0]
        elif now - state[0] < self._interval:
            state[1] += 1
            return False
        else:
            suppressed = int(state[1])
            state[0], state[1] = now, 0
            if suppressed:
                msg += " (%d more like it suppressed since the last line)"
                args = (*args, suppressed)
        self._logger.log(level, msg, *args)
        return True


class ThrottleRepeats(logging.Filter):
    """A logger filter for lines a client can trigger at will in code we do not own
    (uvicorn's ``Invalid HTTP request received.``): each of ``messages`` passes at once, then
    once per ``interval``, with how many were dropped since; any other line passes."""

    def __init__(
        self,
        messages: tuple[str, ...],
        interval: float = LOG_EVERY,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._messages = frozenset(messages)
        self._interval = interval
        self._clock = clock
        self._state: dict[str, list[float]] = {}  # message -> [passed at, dropped since]

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str) or record.msg not in self._messages:
            return True
        now = self._clock()
        state = self._state.get(record.msg)
        if state is None:
            self._state[record.msg] = [now, 0]
            return True
        if now - state[0] < self._interval:
            state[1] += 1
            return False
        dropped = int(state[1])
        state[0], state[1] = now, 0
        if dropped:
            record.msg = (
                f"{record.getMessage()} ({dropped} more like it suppressed since the last line)"
            )
            record.args = ()
        return True
