"""Working-day deadlines (docs/design.md §3 rule 5) on the PRC 2026 calendar, hand-computed.

Every expected value below was worked out by hand from
the State Council notice on the 2026 holidays (see config/calendars/cn.yaml); none is
computed by the code under test.
A deadline is the END (23:59:59.999 local) of the N-th working day AFTER the local
day of issue. Asia/Shanghai is UTC+8 all year (no DST), so the end of a local day D
is D 15:59:59.999 UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from pipelines.rules.calendar import WorkingCalendar, load_calendar

CN_YAML = Path(__file__).resolve().parents[2] / "config" / "calendars" / "cn.yaml"
SHANGHAI = timezone(timedelta(hours=8))  # fixed offset: independent of zoneinfo


@pytest.fixture(scope="module")
def cn() -> WorkingCalendar:
    return load_calendar(CN_YAML)


def utc(text: str) -> datetime:
    """'2026-03-09T15:59:59.999' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def end_of_local_day(day: str) -> datetime:
    """End of a Shanghai day, in UTC: D 23:59:59.999+08:00 == D 15:59:59.999Z."""
    return utc(f"{day}T15:59:59.999")


# --- the loaded file ---------------------------------------------------------------


def test_cn_calendar_file_matches_the_reference_table(cn: WorkingCalendar) -> None:
    assert cn.timezone == "Asia/Shanghai"
    assert (cn.first, cn.last) == (date(2026, 1, 1), date(2026, 12, 31))
    # make-up working days, straight from the reference table (all weekend days)
    assert cn.makeup_working_days == {
        date(2026, 1, 4),  # Sun
        date(2026, 2, 14),  # Sat
        date(2026, 2, 28),  # Sat
        date(2026, 5, 9),  # Sat
        date(2026, 9, 20),  # Sun
        date(2026, 10, 10),  # Sat
    }
    # every day off in the table is a non-working day (weekend days off included)
    ranges = [
        ("2026-01-01", "2026-01-03"),
        ("2026-02-15", "2026-02-23"),
        ("2026-04-04", "2026-04-06"),
        ("2026-05-01", "2026-05-05"),
        ("2026-06-19", "2026-06-21"),
        ("2026-09-25", "2026-09-27"),
        ("2026-10-01", "2026-10-07"),
    ]
    for first, last in ranges:
        day = date.fromisoformat(first)
        while day <= date.fromisoformat(last):
            assert not cn.is_working_day(day), day
            day += timedelta(days=1)
    for day in cn.makeup_working_days:
        assert cn.is_working_day(day), day


# --- ordinary weeks ----------------------------------------------------------------


def test_two_working_days_from_thursday_end_monday(cn: WorkingCalendar) -> None:
    # Thu 2026-03-05 10:00 local (02:00Z). Fri 03-06 = 1, Sat/Sun skipped, Mon 03-09 = 2.
    # End of Mon 03-09 local = 2026-03-09T15:59:59.999Z.
    deadline = cn.add_working_days(utc("2026-03-05T02:00:00"), 2)
    assert deadline.at == utc("2026-03-09T15:59:59.999")
    assert deadline.at.utcoffset() == timedelta(0)
    assert deadline.assumed is False
    assert deadline.warning is None


def test_friday_evening_issue_day_does_not_count(cn: WorkingCalendar) -> None:
    # Fri 2026-03-06 23:30 local (= 15:30Z). The issue day never counts, however late:
    # Mon 03-09 = 1, Tue 03-10 = 2 -> 2026-03-10T15:59:59.999Z.
    issued = datetime(2026, 3, 6, 23, 30, tzinfo=SHANGHAI)
    assert issued == utc("2026-03-06T15:30:00")
    assert cn.add_working_days(issued, 2).at == end_of_local_day("2026-03-10")


def test_issue_time_counts_from_the_local_day_not_the_utc_day(cn: WorkingCalendar) -> None:
    # 2026-03-05T17:00Z is Thu in UTC but Fri 03-06 01:00 in Shanghai. Counting from the
    # local Friday: Mon 03-09 = 1, Tue 03-10 = 2. (Counting from the UTC Thursday would
    # wrongly give Mon 03-09.)
    deadline = cn.add_working_days(utc("2026-03-05T17:00:00"), 2)
    assert deadline.at == end_of_local_day("2026-03-10")
    # one minute earlier it is still Thu 23:59 local: Fri = 1, Mon = 2
    assert cn.add_working_days(utc("2026-03-05T15:59:00"), 2).at == end_of_local_day("2026-03-09")


def test_zero_days_is_the_end_of_the_issue_day(cn: WorkingCalendar) -> None:
    # days=0: no day is counted, so the deadline is the end of the (local) issue day,
    # even when it is not a working day (Sat 2026-03-07 10:00 local = 02:00Z).
    assert cn.add_working_days(utc("2026-03-05T02:00:00"), 0).at == end_of_local_day("2026-03-05")
    assert cn.add_working_days(utc("2026-03-07T02:00:00"), 0).at == end_of_local_day("2026-03-07")
    # local day of 2026-03-05T17:00Z is 03-06
    assert cn.add_working_days(utc("2026-03-05T17:00:00"), 0).at == end_of_local_day("2026-03-06")


# --- holidays and make-up working days ---------------------------------------------


def test_spring_festival_2026(cn: WorkingCalendar) -> None:
    # Issued Fri 2026-02-13 10:00 local (02:00Z).
    # Sat 02-14 make-up working day = 1; Sun 02-15 .. Mon 02-23 off (02-21/22 weekend
    # inside the break); Tue 02-24 = 2.
    issued = utc("2026-02-13T02:00:00")
    assert cn.add_working_days(issued, 1).at == end_of_local_day("2026-02-14")
    assert cn.add_working_days(issued, 2).at == end_of_local_day("2026-02-24")
    # Wed 02-25 = 3, Thu 02-26 = 4, Fri 02-27 = 5, Sat 02-28 (make-up) = 6, Mon 03-02 = 7
    assert cn.add_working_days(issued, 6).at == end_of_local_day("2026-02-28")
    assert cn.add_working_days(issued, 7).at == end_of_local_day("2026-03-02")
    assert cn.add_working_days(issued, 2).assumed is False


def test_make_up_sunday_counts(cn: WorkingCalendar) -> None:
    # Issued Fri 2026-09-18. Sat 09-19 is a weekend day; Sun 09-20 is a make-up
    # working day = 1; Mon 09-21 = 2.
    issued = utc("2026-09-18T02:00:00")
    assert cn.add_working_days(issued, 1).at == end_of_local_day("2026-09-20")
    assert cn.add_working_days(issued, 2).at == end_of_local_day("2026-09-21")


def test_national_day_2026(cn: WorkingCalendar) -> None:
    # Issued Wed 2026-09-30. Thu 10-01 .. Wed 10-07 off; Thu 10-08 = 1, Fri 10-09 = 2,
    # Sat 10-10 make-up = 3, Sun 10-11 off, Mon 10-12 = 4.
    issued = utc("2026-09-30T02:00:00")
    assert cn.add_working_days(issued, 1).at == end_of_local_day("2026-10-08")
    assert cn.add_working_days(issued, 2).at == end_of_local_day("2026-10-09")
    assert cn.add_working_days(issued, 3).at == end_of_local_day("2026-10-10")
    assert cn.add_working_days(issued, 4).at == end_of_local_day("2026-10-12")


def test_new_year_2026(cn: WorkingCalendar) -> None:
    # Issued Wed 2025-12-31 (before coverage, but no counted day is). Thu 01-01, Fri
    # 01-02, Sat 01-03 off; Sun 01-04 make-up = 1; Mon 01-05 = 2.
    deadline = cn.add_working_days(utc("2025-12-31T02:00:00"), 2)
    assert deadline.at == end_of_local_day("2026-01-05")
    assert deadline.assumed is False


# --- coverage ----------------------------------------------------------------------


def test_past_coverage_counts_weekdays_and_warns(cn: WorkingCalendar) -> None:
    # Issued Wed 2026-12-30. Thu 12-31 = 1 (covered); Fri 2027-01-01 = 2, beyond the
    # last covered day: counted as a weekday, though it is probably a holiday.
    deadline = cn.add_working_days(utc("2026-12-30T02:00:00"), 2)
    assert deadline.at == end_of_local_day("2027-01-01")
    assert deadline.assumed is True
    assert deadline.warning is not None
    assert "beyond the calendar's coverage" in deadline.warning
    assert deadline.at.isoformat() in deadline.warning
    # well past coverage: Mon 2027-03-01 -> Tue 03-02 = 1, Wed 03-03 = 2
    later = cn.add_working_days(utc("2027-03-01T02:00:00"), 2)
    assert later.at == end_of_local_day("2027-03-03")
    assert later.assumed is True


def test_inside_coverage_is_not_assumed(cn: WorkingCalendar) -> None:
    # Issued Tue 2026-12-29: Wed 12-30 = 1, Thu 12-31 = 2; the last covered day is
    # counted but nothing beyond it.
    deadline = cn.add_working_days(utc("2026-12-29T02:00:00"), 2)
    assert deadline.at == end_of_local_day("2026-12-31")
    assert deadline.assumed is False
    assert deadline.warning is None


# --- invalid input -----------------------------------------------------------------


def test_day_both_holiday_and_make_up_is_rejected(tmp_path: Path) -> None:
    bad = {
        "name": "clash",
        "timezone": "Asia/Shanghai",
        "covers": {"first": date(2026, 1, 1), "last": date(2026, 12, 31)},
        "holidays": [date(2026, 2, 16), date(2026, 2, 14)],
        "makeup_working_days": [date(2026, 2, 14)],
    }
    path = tmp_path / "clash.yaml"
    path.write_text(yaml.safe_dump(bad), encoding="utf-8")
    assert "2026-02-14" in path.read_text(encoding="utf-8")  # dumped as a YAML date
    with pytest.raises(ValueError, match="2026, 2, 14"):
        load_calendar(path)


def test_naive_datetime_is_rejected(cn: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        cn.add_working_days(datetime(2026, 3, 5, 10, 0), 2)


def test_negative_days_are_rejected(cn: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="days must be >= 0"):
        cn.add_working_days(utc("2026-03-05T02:00:00"), -1)
