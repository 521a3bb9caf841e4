"""Reading CRI container log files for ``/containerLogs``: parsing, tail, since, limitBytes, timestamps, follow.

A CRI runtime writes one file per container attempt at ``ContainerStatus.log_path``, one record per line:
``<RFC3339Nano timestamp> <stdout|stderr> <P|F> <text>``. ``P`` marks a partial line (a line longer than the
runtime's buffer, or output that ended without a newline) whose text continues in the stream's next record; ``F``
ends the line. Should the file be rotated (renamed, and the runtime asked to reopen it with ReopenContainerLog), a
follower moves on to the new file under the same path; kubemini's kubelet itself never rotates container logs, so
a file grows for as long as the container attempt lives.

Differences from the upstream kubelet, on purpose:

- Partial records are joined into one line before anything else: ``tailLines`` counts whole lines, ``sinceTime``
  and ``timestamps=true`` use the line's first record's time (upstream prefixes every record, so a joined line
  can carry timestamps in its middle).
- ``tailLines`` reads the file backwards from its end until it holds the last N lines (and the partial lines still
  open at the end), then forwards from there. A line's partial records are searched for at most
  :data:`PARTIAL_GAP_LIMIT` bytes apart: a line whose parts are further apart (more of the other stream's output
  in between) loses its beginning. As upstream, ``sinceTime`` then filters the tail.
- Only the CRI format; Docker's json-file format is not read. Only the current file: rotated files are not.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from machinery.clock import REAL_CLOCK, Clock

NS_PER_S = 1_000_000_000
READ_CHUNK = 256 * 1024
POLL_INTERVAL_S = 0.25  # follow: how often an idle file is looked at again
STATUS_INTERVAL_S = 1.0  # follow: how often the runtime is asked whether the container still runs
STREAMS = ("stdout", "stderr")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MIN_RECORD_BYTES = len("2006-01-02T15:04:05Z stdout F\n")  # the shortest CRI record a file can hold
PARTIAL_GAP_LIMIT = 64 * 1024  # tailLines: how far back a line's earlier partial record is looked for

_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch for an RFC3339 time (fraction optional); ValueError if malformed."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not an RFC3339 time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"{text!r} is not an RFC3339 time")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = int((match[7] or "").ljust(9, "0"))
    zone = match[8]
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * NS_PER_S + fraction


def format_rfc3339_nano(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: trailing zeros of the fraction dropped, as the kubelet prints."""
    seconds, fraction = divmod(ns, NS_PER_S)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    digits = f"{fraction:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


@dataclass(frozen=True)
class LogRecord:
    """One line of a CRI log file."""

    timestamp_ns: int
    stream: str
    partial: bool
    content: bytes


def parse_record(line: bytes) -> LogRecord:
    """Parse one CRI log line (without its newline); ValueError if it is not one."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise ValueError("not a CRI log record: expected '<time> <stream> <tag> <text>'")
    timestamp = parse_rfc3339_ns(parts[0].decode("ascii"))
    stream = parts[1].decode("ascii")
    if stream not in STREAMS:
        raise ValueError(f"unknown log stream {stream!r}")
    tag = parts[2].split(b":")[0]  # tags are ':'-separated; the first says partial or full
    if tag not in (b"P", b"F"):
        raise ValueError(f"unknown log tag {parts[2]!r}")
    return LogRecord(timestamp, stream, tag == b"P", parts[3] if len(parts) == 4 else b"")


@dataclass(frozen=True)
class LogLine:
    """A whole line of output: its first record's time, its stream, its text with the newline (if it had one)."""

    timestamp_ns: int
    stream: str
    content: bytes


class LineAssembler:
    """Joins each stream's partial records with the record that completes them."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, list[bytes]]] = {}

    def feed(self, records: Iterable[LogRecord]) -> list[LogLine]:
        lines = []
        for record in records:
            started, parts = self._pending.pop(record.stream, (record.timestamp_ns, []))
            parts.append(record.content)
            if record.partial:
                self._pending[record.stream] = (started, parts)
            else:
                lines.append(LogLine(started, record.stream, b"".join(parts) + b"\n"))
        return lines

    def flush(self) -> list[LogLine]:
        """Lines still waiting for their end (the output ended without a newline), oldest first."""
        lines = [LogLine(started, stream, b"".join(parts)) for stream, (started, parts) in self._pending.items()]
        self._pending.clear()
        return sorted(lines, key=lambda line: line.timestamp_ns)


@dataclass(frozen=True)
class LogOptions:
    """What a ``/containerLogs`` request asks for (PodLogOptions as the kubelet receives them)."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None  # None: all lines
    since_ns: int | None = None  # only lines at or after this time (epoch nanoseconds)
    limit_bytes: int | None = None  # None: no limit


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "t"):
        return True
    if lowered in ("", "false", "0", "f"):
        return False
    raise ValueError(f'invalid value for {name}: "{value}" is not a boolean')


def _int(query: Mapping[str, str], name: str, minimum: int, rule: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f'invalid value for {name}: "{value}" is not an integer') from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f'invalid value for {name}: "{value}" is out of range (a 64-bit signed integer)')
    if number < minimum:
        raise ValueError(f"{name}: Invalid value: {number}: {rule}")
    return number


def log_options_from_query(query: Mapping[str, str], now_ns: int) -> LogOptions:
    """LogOptions from the request's query (``now_ns`` resolves sinceSeconds); ValueError names the bad field."""
    since_seconds = _int(query, "sinceSeconds", 1, "must be greater than 0")
    since_time = query.get("sinceTime") or None
    if since_seconds is not None and since_time is not None:
        raise ValueError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    since_ns = None
    if since_seconds is not None:
        since_ns = now_ns - since_seconds * NS_PER_S
    elif since_time is not None:
        try:
            since_ns = parse_rfc3339_ns(since_time)
        except ValueError:
            raise ValueError(f'invalid value for sinceTime: "{since_time}" is not an RFC3339 time') from None
    return LogOptions(
        follow=parse_bool("follow", query.get("follow", "")),
        previous=parse_bool("previous", query.get("previous", "")),
        timestamps=parse_bool("timestamps", query.get("timestamps", "")),
        tail_lines=_int(query, "tailLines", 0, "must be greater than or equal to 0"),
        since_ns=since_ns,
        limit_bytes=_int(query, "limitBytes", 1, "must be greater than 0"),
    )


class LogFile:
    """An open CRI log file read record by record; notices when its path names another file (rotation).

    Reads are plain blocking reads of at most :data:`READ_CHUNK` bytes from a local file (page cache), cheaper
    than a thread hop. Lines that are not CRI records are skipped, as the kubelet does.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._identity = _identity(os.fstat(self._file.fileno()))
        self._rest = b""

    async def seek_tail(self, lines: int) -> None:
        """Move to where the file's last ``lines`` whole lines (and the partial lines still open at its end) begin,
        reading backwards from the end rather than the whole file. Reading on from there yields them, possibly
        after a few older lines (some cut at the front), which the caller drops by keeping the last ``lines``.
        Must be called before the first :meth:`read`."""
        end = os.fstat(self._file.fileno()).st_size
        start = 0
        if lines * MIN_RECORD_BYTES < end:  # else the file cannot hold more than `lines` records: read it all
            start = await _tail_start(self._file, end, lines)
        self._file.seek(start)

    def read(self) -> list[LogRecord] | None:
        """The complete records written since the last read; None when nothing new was written."""
        data = self._file.read(READ_CHUNK)
        if not data:
            return None
        *lines, self._rest = (self._rest + data).split(b"\n")
        records = []
        for line in lines:
            try:
                records.append(parse_record(line))
            except ValueError:
                continue
        return records

    def rotated(self) -> bool:
        """Whether the path now names a new file, or this one was truncated (only meaningful at end of file)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed away, the runtime not yet reopened: the new file comes
        return _identity(st) != self._identity or st.st_size < self._file.tell()

    def reopen(self) -> None:
        self._file.close()
        self._file = open(self.path, "rb")  # noqa: SIM115
        self._identity = _identity(os.fstat(self._file.fileno()))
        self._rest = b""

    def close(self) -> None:
        self._file.close()


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


async def _tail_start(file: BinaryIO, end: int, lines: int) -> int:
    """The offset of the first record of the last ``lines`` lines of ``file[:end]`` (0: the whole file).

    Walking the records backwards: each full (``F``) record ends a line and, while lines are still wanted, counts
    one and opens its stream's line, which then extends back through that stream's partial (``P``) records until
    the stream's previous ``F``. Both streams start open, so the partial lines still open at the end are found too.
    An open line whose stream shows nothing for :data:`PARTIAL_GAP_LIMIT` bytes is taken as complete.
    """
    needed, start = lines, -1
    open_lines = dict.fromkeys(STREAMS, end)  # stream -> offset of its open line's earliest record found so far
    async for offset, raw in _records_backwards(file, end):
        if start < 0:
            start = offset + len(raw) + 1  # just past the last whole record: where a record being written begins
        try:
            record = parse_record(raw)
        except ValueError:
            continue  # not a record: the forward read skips it too
        if not record.partial:
            open_lines.pop(record.stream, None)  # it ends the stream's previous line
            if needed:
                needed -= 1
                open_lines[record.stream] = start = offset
        elif record.stream in open_lines:
            open_lines[record.stream] = start = offset
        for stream, earliest in list(open_lines.items()):
            if earliest - offset > PARTIAL_GAP_LIMIT:
                del open_lines[stream]
        if not needed and not open_lines:
            return start
    return 0


async def _records_backwards(file: BinaryIO, end: int) -> AsyncIterator[tuple[int, bytes]]:
    """``(offset, record)`` for each newline-terminated record of ``file[:end]``, the last first, read a chunk at a
    time (yielding to the event loop in between). The bytes after the last newline — a record still being
    written — are left out."""
    position, carry, trailing = end, b"", True
    while position > 0:
        chunk_start = max(0, position - READ_CHUNK)
        file.seek(chunk_start)
        data = file.read(position - chunk_start) + carry
        position = chunk_start
        pieces = data.split(b"\n")
        if trailing:  # the last piece follows the file's last newline
            if len(pieces) == 1:
                carry = b""  # no newline yet: all of it belongs to the unfinished record
                continue
            pieces.pop()
            trailing = False
        carry = pieces.pop(0) if chunk_start > 0 else b""  # the head of a record that began in an earlier chunk
        offset = chunk_start + len(carry) + 1 if chunk_start > 0 else 0
        offsets = []
        for piece in pieces:
            offsets.append(offset)
            offset += len(piece) + 1
        for at, piece in zip(reversed(offsets), reversed(pieces), strict=True):
            yield at, piece
        await asyncio.sleep(0)


class _Output:
    """Applies since, timestamps and limitBytes to lines and renders them as the response's bytes."""

    def __init__(self, options: LogOptions) -> None:
        self.options = options
        self.remaining = options.limit_bytes

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0

    def wanted(self, lines: Iterable[LogLine]) -> list[LogLine]:
        since = self.options.since_ns
        return [line for line in lines if since is None or line.timestamp_ns >= since]

    def render(self, lines: Iterable[LogLine]) -> bytes:
        if self.options.timestamps:
            data = b"".join(format_rfc3339_nano(line.timestamp_ns).encode() + b" " + line.content for line in lines)
        else:
            data = b"".join(line.content for line in lines)
        if self.remaining is not None:
            data = data[:self.remaining]
            self.remaining -= len(data)
        return data


async def stream_log(log: LogFile, options: LogOptions, *, running: Callable[[], Awaitable[bool]] | None = None,
                     clock: Clock = REAL_CLOCK) -> AsyncIterator[bytes]:
    """The log's output as chunks of bytes; closes ``log`` when done.

    Without ``follow`` it ends at the end of the file. With ``follow`` it keeps reading new records (following a
    rotated file to its successor) until ``running()`` says the container has stopped and the file is drained.
    """
    assembler, output = LineAssembler(), _Output(options)
    try:
        async for chunk in _existing_output(log, options, assembler, output):
            yield chunk
        if options.follow and running is not None and not output.done:
            async for chunk in _followed_output(log, assembler, output, running, clock):
                yield chunk
        if not output.done:
            tail = output.render(output.wanted(assembler.flush()))
            if tail:
                yield tail
    finally:
        log.close()


async def _existing_output(log: LogFile, options: LogOptions, assembler: LineAssembler,
                           output: _Output) -> AsyncIterator[bytes]:
    """What the file holds now; with tailLines only its last lines (with follow, partial lines still open are not
    counted: they are completed, and sent, by what follows)."""
    if options.tail_lines is not None:
        await log.seek_tail(options.tail_lines)
        backlog: deque[LogLine] = deque(maxlen=options.tail_lines)
        while (records := log.read()) is not None:
            await asyncio.sleep(0)  # a long file is read a chunk at a time without holding the loop
            backlog.extend(assembler.feed(records))
        if not options.follow:
            backlog.extend(assembler.flush())
        lines = output.wanted(backlog)
        if lines:
            yield output.render(lines)
        return
    while (records := log.read()) is not None:
        await asyncio.sleep(0)
        lines = output.wanted(assembler.feed(records))
        if lines:
            yield output.render(lines)
            if output.done:
                return


async def _followed_output(log: LogFile, assembler: LineAssembler, output: _Output,
                           running: Callable[[], Awaitable[bool]], clock: Clock) -> AsyncIterator[bytes]:
    last_check: float | None = None
    exited = False
    while not output.done:
        records = log.read()
        if records is not None:
            await asyncio.sleep(0)
            lines = output.wanted(assembler.feed(records))
            if lines:
                yield output.render(lines)
            continue
        if log.rotated():
            log.reopen()
            continue
        if exited:
            return  # one more read after the exit was seen, so what it wrote last is not lost
        now = clock.monotonic()
        if last_check is None or now - last_check >= STATUS_INTERVAL_S:
            last_check = now
            exited = not await running()
            if exited:
                continue
        await clock.sleep(POLL_INTERVAL_S)
