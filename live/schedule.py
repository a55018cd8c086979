"""Opening hours: outside them the installation sleeps (black screen or a picture, the
camera released, no dream steps) and it wakes by itself at opening. Staff can wake it
now, or put it to sleep now, from a remote; that holds until the next opening or closing.

Days and times are local time (the machine's clock). A close time at or before the open
time runs past midnight (18:00-02:00 closes at 2 in the morning of the next day); equal
times mean open all day. The clock is injected, so tests need no waiting."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Clock = Callable[[], dt.datetime]


class ScheduleError(ValueError):
    """A day or time that cannot be understood: the message names what and how."""


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'tue-sun', 'mon,wed,fri', 'sat-mon' (wrapping), 'daily' -> weekdays (Monday 0)."""
    t = text.strip().lower()
    if t in ("daily", "every day", "all"):
        return frozenset(range(7))
    days: set[int] = set()
    for part in filter(None, (p.strip() for p in t.split(","))):
        a, sep, b = (x.strip()[:3] for x in part.partition("-"))
        if a not in DAYS or (sep and b not in DAYS):
            raise ScheduleError(f"'{part}' is not a day or a range of days; use mon..sun, e.g. \"tue-sun\" "
                                f"or \"mon,wed,fri\"")
        i, j = DAYS.index(a), DAYS.index(b) if sep else DAYS.index(a)
        days.update((i + k) % 7 for k in range((j - i) % 7 + 1))
    if not days:
        raise ScheduleError("no day given; use e.g. \"tue-sun\" or \"daily\"")
    return frozenset(days)


def parse_time(text: str) -> dt.time:
    """'10:00', '9:30', '18:00:00' -> a time of day."""
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})(?::(\d{2}))?\s*", text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59 or int(m[3] or 0) > 59:
        raise ScheduleError(f"'{text}' is not a time of day; use HH:MM, e.g. \"10:00\" or \"18:30\"")
    return dt.time(int(m[1]), int(m[2]), int(m[3] or 0))


@dataclass(frozen=True)
class Hours:
    days: frozenset[int]
    open: dt.time
    close: dt.time

    def spans(self, day: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
        """The opening that starts on `day` (None when closed that day)."""
        if day.weekday() not in self.days:
            return None
        start = dt.datetime.combine(day, self.open)
        end = dt.datetime.combine(day, self.close)
        if end <= start:
            end += dt.timedelta(days=1)   # past midnight, or equal times: all day
        return start, end

    def _around(self, now: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
        days = (now.date() + dt.timedelta(days=k) for k in range(-1, 9))
        return [s for s in map(self.spans, days) if s is not None]

    def is_open(self, now: dt.datetime) -> bool:
        return any(a <= now < b for a, b in self._around(now))

    def next_change(self, now: dt.datetime) -> dt.datetime:
        """The next opening or closing after `now` (a week on when there is none)."""
        times = [t for span in self._around(now) for t in span if t > now]
        return min(times, default=now + dt.timedelta(days=7))


class Schedule:
    """`asleep()` now, by the hours and any standing wake/sleep from staff; `wake()` and
    `sleep()` hold until the next opening or closing."""

    def __init__(self, hours: Hours | None, clock: Clock = dt.datetime.now):
        self.hours, self.clock = hours, clock
        self._override: tuple[bool, dt.datetime] | None = None   # (asleep, until)
        self._known: tuple[bool, dt.datetime, dt.datetime] | None = None   # (answer, worked out at, holds until)

    def asleep(self) -> bool:
        """Asked every display frame: the hours are worked out once per opening or closing."""
        if self.hours is None:
            return False
        now = self.clock()
        if self._override is not None:
            asleep, until = self._override
            if now < until:
                return asleep
            self._override = None
        if self._known is None or not self._known[1] <= now < self._known[2]:   # also a clock set back
            self._known = (not self.hours.is_open(now), now, self.hours.next_change(now))
        return self._known[0]

    def wake(self) -> None:
        self._hold(False)

    def sleep(self) -> None:
        self._hold(True)

    def _hold(self, asleep: bool) -> None:
        if self.hours is not None:
            now = self.clock()
            self._override = (asleep, self.hours.next_change(now))
