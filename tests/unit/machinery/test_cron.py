"""The cron parser behind CronJob validation and the CronJob controller: syntax, messages, stepping."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machinery.cron import CronError, CronSchedule, EverySchedule, parse_cron, parse_go_duration


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def run(expr: str, start: datetime, count: int) -> list[datetime]:
    schedule = parse_cron(expr)
    times, t = [], start
    for _ in range(count):
        t = schedule.next_after(t)
        assert t is not None
        times.append(t)
    return times


# --- accepted syntax and the activations it produces ------------------------------------------------

NEXT_CASES = [
    # expr, after, expected next activation
    ("* * * * *", at(2025, 1, 1, 0, 0, 30), at(2025, 1, 1, 0, 1)),
    ("* * * * *", at(2025, 1, 1, 0, 0), at(2025, 1, 1, 0, 1)),
    ("*/15 * * * *", at(2025, 1, 1, 0, 14), at(2025, 1, 1, 0, 15)),
    ("*/15 * * * *", at(2025, 1, 1, 0, 45), at(2025, 1, 1, 1, 0)),
    ("5/15 * * * *", at(2025, 1, 1, 0, 50), at(2025, 1, 1, 1, 5)),  # N/step means N-max/step
    ("0 9-17/4 * * *", at(2025, 1, 1, 14, 0), at(2025, 1, 1, 17, 0)),
    ("30 2 * * *", at(2025, 1, 1, 2, 30), at(2025, 1, 2, 2, 30)),
    ("0 0 1 * *", at(2025, 1, 15), at(2025, 2, 1)),
    ("0 0 31 * *", at(2025, 1, 31, 0, 1), at(2025, 3, 31)),  # skips February and its 28 days
    ("0 0 29 2 *", at(2025, 1, 1), at(2028, 2, 29)),
    ("0 12 * * mon", at(2025, 1, 1), at(2025, 1, 6, 12)),  # 2025-01-01 is a Wednesday
    ("0 12 * * SUN", at(2025, 1, 1), at(2025, 1, 5, 12)),
    ("0 12 * * 0", at(2025, 1, 1), at(2025, 1, 5, 12)),
    ("0 0 * jan-mar/2 *", at(2025, 1, 31, 12), at(2025, 3, 1)),
    ("0 0 1,15 * *", at(2025, 1, 2), at(2025, 1, 15)),
    ("0 0 13 * 5", at(2025, 1, 1), at(2025, 1, 3)),  # day-of-month OR day-of-week (a Friday)
    ("0 0 ? * 5", at(2025, 1, 1), at(2025, 1, 3)),
    ("0 0 * * 1-5", at(2025, 1, 3, 1), at(2025, 1, 6)),  # Friday night → Monday
    ("@hourly", at(2025, 1, 1, 0, 59, 59), at(2025, 1, 1, 1, 0)),
    ("@daily", at(2025, 1, 1, 0, 0), at(2025, 1, 2)),
    ("@midnight", at(2025, 1, 1, 23, 59), at(2025, 1, 2)),
    ("@weekly", at(2025, 1, 1), at(2025, 1, 5)),
    ("@monthly", at(2025, 1, 1), at(2025, 2, 1)),
    ("@yearly", at(2025, 1, 1), at(2026, 1, 1)),
    ("@annually", at(2025, 6, 1), at(2026, 1, 1)),
    ("  0   0  * *  * ", at(2025, 1, 1), at(2025, 1, 2)),  # any whitespace separates fields
]


@pytest.mark.parametrize(("expr", "after", "expected"), NEXT_CASES)
def test_next_activation(expr: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expr).next_after(after) == expected


def test_a_sequence_of_weekday_activations() -> None:
    times = run("*/15 9-17 * * mon-fri", at(2025, 1, 3, 17, 30), 4)
    assert times == [at(2025, 1, 3, 17, 45), at(2025, 1, 6, 9, 0), at(2025, 1, 6, 9, 15), at(2025, 1, 6, 9, 30)]


def test_impossible_date_never_fires() -> None:
    assert parse_cron("0 0 30 2 *").next_after(at(2025, 1, 1)) is None


def test_naive_datetimes_are_utc_and_results_keep_the_callers_zone() -> None:
    assert parse_cron("0 * * * *").next_after(datetime(2025, 1, 1, 10, 30)) == at(2025, 1, 1, 11)
    tokyo = ZoneInfo("Asia/Tokyo")
    result = parse_cron("0 9 * * *").next_after(datetime(2025, 1, 1, 10, tzinfo=tokyo))
    assert result == datetime(2025, 1, 2, 9, tzinfo=tokyo)
    assert result.tzinfo is tokyo


def test_tz_prefix_sets_the_schedule_zone() -> None:
    schedule = parse_cron("TZ=Asia/Tokyo 0 9 * * *")
    assert isinstance(schedule, CronSchedule)
    assert schedule.next_after(at(2025, 1, 1, 0, 30)) == at(2025, 1, 2, 0)  # 09:00 JST == 00:00 UTC
    assert parse_cron("CRON_TZ=UTC 0 9 * * *").next_after(at(2025, 1, 1)) == at(2025, 1, 1, 9)


def test_local_time_in_a_spring_forward_gap_is_skipped() -> None:
    times = run("TZ=America/New_York 30 2 * * *", at(2025, 3, 8, 12), 2)
    assert times == [at(2025, 3, 10, 6, 30), at(2025, 3, 11, 6, 30)]  # no run on 2025-03-09


def test_repeated_local_time_in_a_fall_back_fires_in_both_occurrences() -> None:
    times = run("TZ=America/New_York 30 1 * * *", at(2025, 11, 1, 12), 3)
    assert times == [at(2025, 11, 2, 5, 30), at(2025, 11, 2, 6, 30), at(2025, 11, 3, 6, 30)]


def test_every_descriptor() -> None:
    schedule = parse_cron("@every 1h30m")
    assert isinstance(schedule, EverySchedule)
    assert schedule.interval == timedelta(hours=1, minutes=30)
    assert schedule.next_after(at(2025, 1, 1, 0, 0, 10)) == at(2025, 1, 1, 1, 30, 10)
    assert parse_cron("@every 500ms").interval == timedelta(seconds=1)  # at least one second


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0), ("90s", 90), ("1h", 3600), ("1.5h", 5400), ("1h2m3s", 3723), ("250ms", 0.25), ("+5m", 300),
])
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "h", "1x", "1h 2m", "-", ".s"])
def test_bad_go_durations(text: str) -> None:
    assert parse_go_duration(text) is None


# --- rejected syntax, with the reference implementation's messages ----------------------------------

ERROR_CASES = [
    ("", "empty spec string"),
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("0 * * * * *", "expected exactly 5 fields, found 6: [0 * * * * *]"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * 32 * *", "end of range (32) above maximum (31): 32"),
    ("* * * 13 *", "end of range (13) above maximum (12): 13"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("* * * foo *", 'failed to parse int from foo: strconv.Atoi: parsing "foo": invalid syntax'),
    ("* * * * L", 'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
    ("TZ=Mars/Olympus * * * * *", "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"),
]


@pytest.mark.parametrize(("expr", "message"), ERROR_CASES)
def test_parse_errors(expr: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        parse_cron(expr)
    assert str(info.value) == message


def test_cron_error_is_a_value_error() -> None:
    assert issubclass(CronError, ValueError)


# --- properties against a brute-force reference -----------------------------------------------------


def _field(low: int, high: int, pick_high: int | None = None) -> st.SearchStrategy[tuple[str, set[int]]]:
    """A random field text and the set of values it denotes; explicit values stay ≤ ``pick_high``."""
    values = st.integers(low, pick_high or high)
    single = values.map(lambda v: (str(v), {v}))
    ranged = st.tuples(values, values).map(sorted).flatmap(
        lambda ab: st.integers(1, 5).map(
            lambda step: (f"{ab[0]}-{ab[1]}/{step}", set(range(ab[0], ab[1] + 1, step)))))
    stepped = st.integers(1, 7).map(lambda step: (f"*/{step}", set(range(low, high + 1, step))))
    listed = st.lists(values, min_size=1, max_size=4).map(lambda vs: (",".join(map(str, vs)), set(vs)))
    star = st.just(("*", set(range(low, high + 1))))
    return st.one_of(star, single, ranged, stepped, listed)


def _is_star(text: str) -> bool:
    """A field written as ``*`` (a step of 1 keeps it a star; a larger step does not)."""
    return text in ("*", "*/1")


def _reference_next(fields: list[tuple[str, set[int]]], after: datetime) -> datetime | None:
    """Day by day, then hour by hour, then minute by minute: obviously right, slow enough for tests."""
    minutes, hours, doms, months, dows = (values for _, values in fields)
    either_star = _is_star(fields[2][0]) or _is_star(fields[4][0])
    day = after.date()
    for _ in range(366 * 6):
        dom_ok, dow_ok = day.day in doms, (day.weekday() + 1) % 7 in dows
        day_ok = (dom_ok and dow_ok) if either_star else (dom_ok or dow_ok)
        if day.month in months and day_ok:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                    if candidate > after:
                        return candidate
        day = day + timedelta(days=1)
    return None


@settings(max_examples=150, deadline=None)
@given(
    minute=_field(0, 59), hour=_field(0, 23), dom=_field(1, 31, 28), month=_field(1, 12), dow=_field(0, 6),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
)
def test_next_matches_a_brute_force_search(minute, hour, dom, month, dow, after) -> None:
    fields = [minute, hour, dom, month, dow]
    expr = " ".join(text for text, _ in fields)
    after = after.replace(tzinfo=UTC)
    assert parse_cron(expr).next_after(after) == _reference_next(fields, after)


@settings(max_examples=100, deadline=None)
@given(
    minute=_field(0, 59), hour=_field(0, 23),
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
    offset=st.integers(-12 * 60, 14 * 60),
)
def test_fixed_offset_zones_shift_wall_clock_only(minute, hour, after, offset) -> None:
    zone = timezone(timedelta(minutes=offset))
    expr = f"{minute[0]} {hour[0]} * * *"
    local_after = after.replace(tzinfo=zone)
    result = parse_cron(expr).next_after(local_after)
    assert result is not None and result > local_after
    assert result.tzinfo is zone and result.minute in minute[1] and result.hour in hour[1] and result.second == 0
    assert result - local_after <= timedelta(days=1)


@settings(max_examples=100, deadline=None)
@given(after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1)),
       zone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]))
def test_next_is_strictly_later_and_on_the_minute_in_dst_zones(after, zone) -> None:
    schedule = parse_cron(f"TZ={zone} */7 * * * *")
    start = after.replace(tzinfo=UTC)
    result = schedule.next_after(start)
    assert result is not None and start < result <= start + timedelta(hours=2)
    local = result.astimezone(ZoneInfo(zone))
    assert local.minute % 7 == 0 and local.second == 0


def test_reference_helper_agrees_on_a_known_case() -> None:
    fields = [("0", {0}), ("12", {12}), ("*", set(range(1, 32))), ("*", set(range(1, 13))), ("1", {1})]
    assert _reference_next(fields, at(2025, 1, 1)) == at(2025, 1, 6, 12)
    assert date(2025, 1, 6).weekday() == 0
