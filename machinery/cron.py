"""Standard cron schedules, parsed and stepped the way Kubernetes' CronJob code does.

CronJob validation (``spec.schedule``) and the CronJob controller both need one parser whose
accepted syntax and error texts match what Kubernetes users see. Kubernetes uses the robfig/cron
"standard" parser: five fields (minute, hour, day of month, month, day of week), lists, ranges,
steps, ``*``/``?``, month and weekday names, the ``@yearly``/``@annually``/``@monthly``/``@weekly``/
``@daily``/``@midnight``/``@hourly`` descriptors, ``@every <duration>`` and an optional ``TZ=`` or
``CRON_TZ=`` prefix. This module reproduces that behaviour, including its error messages and its
search for the next activation (day-of-month and day-of-week are OR-ed when both are restricted;
local times skipped by a DST jump never fire; repeated local times may fire twice).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "CronSchedule", "EverySchedule", "parse_cron"]

_STAR = 1 << 63  # marks a field written as "*" or "?" (matters for the day-of-month/day-of-week rule)


class CronError(ValueError):
    """A schedule that does not parse; ``str(err)`` is the message Kubernetes reports."""


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int]


_MINUTES = _Bounds(0, 59, {})
_HOURS = _Bounds(0, 23, {})
_DOM = _Bounds(1, 31, {})
_MONTHS = _Bounds(1, 12, {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))})
_DOW = _Bounds(0, 6, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))})

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class CronSchedule:
    """A parsed five-field schedule; bit ``n`` of a field is set when value ``n`` matches."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    location: tzinfo | None = None  # from a TZ=/CRON_TZ= prefix; None means "the time zone of dt"

    def next_after(self, dt: datetime) -> datetime | None:
        """The first activation strictly after ``dt`` (whole minutes), in ``dt``'s time zone.

        A naive ``dt`` is taken as UTC. Returns None when nothing matches within five years
        (e.g. ``0 0 30 2 *``), as the reference implementation does.
        """
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        loc = self.location or dt.tzinfo
        t = _shift(dt.astimezone(loc).replace(microsecond=0), timedelta(seconds=1))
        year_limit = t.year + 5
        fields = self._fields(loc)
        added = False
        while True:  # each pass restarts from the month when a lower field wrapped
            if t.year > year_limit:
                return None
            for field in fields:
                t, added, wrapped = field.seek(t, added)
                if wrapped:
                    break
            else:
                return t.astimezone(dt.tzinfo)

    def _fields(self, loc: tzinfo) -> tuple[_Field, ...]:
        """The fields :meth:`next_after` settles from the largest down, each stepping in local time."""
        return (
            _Field(matches=lambda t: _has(self.month, t.month),
                   start=lambda t: _wall(t.year, t.month, 1, 0, 0, loc),
                   step=lambda t: _wall(t.year, t.month + 1, t.day, t.hour, t.minute, loc),
                   wrapped=lambda t: t.month == 1),
            _Field(matches=self._day_matches,
                   start=lambda t: _wall(t.year, t.month, t.day, 0, 0, loc),
                   step=lambda t: _next_day(t, loc),
                   wrapped=lambda t: t.day == 1),
            _Field(matches=lambda t: _has(self.hour, t.hour),
                   start=lambda t: _wall(t.year, t.month, t.day, t.hour, 0, loc),
                   step=lambda t: _shift(t, timedelta(hours=1)),
                   wrapped=lambda t: t.hour == 0),
            _Field(matches=lambda t: _has(self.minute, t.minute),
                   start=lambda t: t.replace(second=0),
                   step=lambda t: _shift(t, timedelta(minutes=1)),
                   wrapped=lambda t: t.minute == 0),
            # the standard parser always fires at second 0
            _Field(matches=lambda t: t.second == 0,
                   start=lambda t: t,
                   step=lambda t: _shift(t, timedelta(seconds=1)),
                   wrapped=lambda t: t.second == 0),
        )

    def _day_matches(self, t: datetime) -> bool:
        dom_match = _has(self.dom, t.day)
        dow_match = _has(self.dow, (t.weekday() + 1) % 7)
        if self.dom & _STAR or self.dow & _STAR:
            return dom_match and dow_match
        return dom_match or dow_match


@dataclass(frozen=True)
class EverySchedule:
    """``@every <duration>``: fires every ``interval`` (whole seconds, at least one second)."""

    interval: timedelta
    location: tzinfo | None = None

    def next_after(self, dt: datetime) -> datetime | None:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt + self.interval - timedelta(microseconds=dt.microsecond)


@dataclass(frozen=True)
class _Field:
    """One field of the activation search: how to test, truncate, step and detect a wrap of ``t``."""

    matches: Callable[[datetime], bool]
    start: Callable[[datetime], datetime]  # the first step of a search truncates the lower fields first
    step: Callable[[datetime], datetime]
    wrapped: Callable[[datetime], bool]  # the step rolled the next larger field over

    def seek(self, t: datetime, added: bool) -> tuple[datetime, bool, bool]:
        """Step ``t`` until the field matches; returns (t, added, wrapped). ``added`` is True once
        the search has moved at all; a wrap means the larger fields must be settled again."""
        while not self.matches(t):
            if not added:
                added = True
                t = self.start(t)
            t = self.step(t)
            if self.wrapped(t):
                return t, added, True
        return t, added, False


def _has(bits: int, value: int) -> bool:
    return bool(bits & (1 << value))


def _next_day(t: datetime, loc: tzinfo) -> datetime:
    """The same wall time a day later; a DST change that moved midnight snaps back onto the day boundary."""
    t = _wall(t.year, t.month, t.day + 1, t.hour, t.minute, loc)
    if t.hour != 0:
        t = _shift(t, timedelta(hours=24 - t.hour) if t.hour > 12 else -timedelta(hours=t.hour))
    return t


def _normalize(t: datetime, loc: tzinfo) -> datetime:
    """Round-trip through UTC so a wall time inside a DST gap moves forward (as Go's time.Date does)."""
    return t.astimezone(UTC).astimezone(loc)


def _wall(year: int, month: int, day: int, hour: int, minute: int, loc: tzinfo) -> datetime:
    """Go's time.Date: out-of-range month/day roll over into the following month/year."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    naive = datetime(year, month, 1, hour, minute) + timedelta(days=day - 1)
    return _normalize(naive.replace(tzinfo=loc), loc)


def _shift(t: datetime, delta: timedelta) -> datetime:
    """Add elapsed (not wall-clock) time, as Go's Time.Add does."""
    return (t.astimezone(UTC) + delta).astimezone(t.tzinfo)


# --- parsing ---------------------------------------------------------------------------------------


def parse_cron(expr: str) -> CronSchedule | EverySchedule:
    """Parse a standard cron expression; raises :class:`CronError` with Kubernetes' message."""
    if not expr:
        raise CronError("empty spec string")
    location: tzinfo | None = None
    if expr.startswith(("TZ=", "CRON_TZ=")):
        name, _, rest = expr.partition(" ")
        zone = name.split("=", 1)[1]
        location = _load_location(zone)
        expr = rest.strip()
    if expr.startswith("@"):
        return _parse_descriptor(expr, location)
    fields = expr.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    bounds = (_MINUTES, _HOURS, _DOM, _MONTHS, _DOW)
    minute, hour, dom, month, dow = (_parse_field(f, b) for f, b in zip(fields, bounds, strict=True))
    return CronSchedule(minute, hour, dom, month, dow, location)


def _load_location(zone: str) -> tzinfo:
    if zone in ("", "UTC"):
        return UTC
    if zone == "Local":
        return datetime.now().astimezone().tzinfo or UTC
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "America" is a directory, a huge name
        raise CronError(f"provided bad location {zone}: unknown time zone {zone}") from None


def _parse_descriptor(expr: str, location: tzinfo | None) -> CronSchedule | EverySchedule:
    if expr.startswith("@every "):
        interval = parse_go_duration(expr[len("@every "):])
        if interval is None:
            raise CronError(f"failed to parse duration {expr}: time: invalid duration "
                            f'"{expr[len("@every "):]}"')
        seconds = max(int(interval.total_seconds()), 1)  # whole seconds, at least one
        return EverySchedule(timedelta(seconds=seconds), location)
    standard = _DESCRIPTORS.get(expr)
    if standard is None:
        raise CronError(f"unrecognized descriptor: {expr}")
    schedule = parse_cron(standard)
    assert isinstance(schedule, CronSchedule)
    return CronSchedule(schedule.minute, schedule.hour, schedule.dom, schedule.month, schedule.dow, location)


def _parse_field(field: str, bounds: _Bounds) -> int:
    bits = 0
    for part in field.split(","):
        bits |= _parse_range(part, bounds)
    return bits


def _parse_range(expr: str, bounds: _Bounds) -> int:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    extra = 0
    if low_and_high[0] in ("*", "?"):
        start, end, extra = bounds.low, bounds.high, _STAR
    else:
        start = _int_or_name(low_and_high[0], bounds.names)
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = _int_or_name(low_and_high[1], bounds.names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _non_negative_int(range_and_step[1])
        if single:  # "N/step" means "N-max/step"
            end = bounds.high
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for value in range(start, end + 1, step):
        bits |= 1 << value
    return bits | extra


def _int_or_name(text: str, names: dict[str, int]) -> int:
    if names and text.lower() in names:
        return names[text.lower()]
    return _non_negative_int(text)


_GO_INT_RE = re.compile(r"[+-]?[0-9]+")


def _non_negative_int(text: str) -> int:
    if not _GO_INT_RE.fullmatch(text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value


# --- Go durations ("1h30m", "90s", "1.5h") ---------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART_RE = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> timedelta | None:
    """time.ParseDuration for non-negative durations; None when the text is not one."""
    if text == "0":
        return timedelta(0)
    body = text[1:] if text[:1] == "+" else text
    if not body:
        return None
    total, pos = 0.0, 0
    while pos < len(body):
        match = _DURATION_PART_RE.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return timedelta(seconds=total)
