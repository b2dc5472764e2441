"""Working days and deadlines (docs/design.md §3 rule 5). Pure: imports neither Beam nor Kafka.

A calendar knows public holidays and make-up working days (China moves weekend
days) for the years it covers. Past its last covered day it cannot know the
holidays, so it counts weekends only and says so (``Deadline.assumed``), rather
than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

END_OF_DAY = time(23, 59, 59, 999000)


@dataclass(frozen=True)
class Deadline:
    at: datetime  # UTC
    # True when some counted day lay outside the calendar's coverage and was
    # judged by weekday alone
    assumed: bool

    @property
    def warning(self) -> str | None:
        if not self.assumed:
            return None
        return (
            f"deadline {self.at.isoformat()} counts days beyond the calendar's coverage as "
            "weekdays-only working days; public holidays there are unknown"
        )


@dataclass(frozen=True)
class WorkingCalendar:
    name: str
    timezone: str
    first: date
    last: date
    holidays: frozenset[date]
    makeup_working_days: frozenset[date]

    def __post_init__(self) -> None:
        clash = self.holidays & self.makeup_working_days
        if clash:
            raise ValueError(
                f"calendar {self.name}: days both holiday and working day: {sorted(clash)}"
            )

    def covers(self, day: date) -> bool:
        return self.first <= day <= self.last

    def is_working_day(self, day: date) -> bool:
        if day in self.makeup_working_days:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def add_working_days(self, start: datetime, days: int) -> Deadline:
        """End of the ``days``-th working day after the (local) day of ``start``.

        The issue day itself never counts, whatever the hour: a task issued on
        Friday evening with 2 working days is due at the end of Tuesday.
        """
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        zone = ZoneInfo(self.timezone)
        day = start.astimezone(zone).date()
        assumed = False
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            assumed = assumed or not self.covers(day)
            if self.is_working_day(day):
                counted += 1
        local_end = datetime.combine(day, END_OF_DAY, tzinfo=zone)
        return Deadline(at=local_end.astimezone(ZoneInfo("UTC")), assumed=assumed)


def calendar_from_mapping(data: Any) -> WorkingCalendar:
    covers = data["covers"]
    return WorkingCalendar(
        name=str(data["name"]),
        timezone=str(data["timezone"]),
        first=covers["first"],
        last=covers["last"],
        holidays=frozenset(data.get("holidays") or ()),
        makeup_working_days=frozenset(data.get("makeup_working_days") or ()),
    )


def load_calendar(path: Path) -> WorkingCalendar:
    with path.open(encoding="utf-8") as handle:
        return calendar_from_mapping(yaml.safe_load(handle))
