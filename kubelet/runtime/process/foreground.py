"""The foreground half of ``exec``: waiting for the process while relaying signals, or relaying its terminal.

Without a terminal the command passes on the signals it gets and exits with the process's status (128+n for
signal n), like ``runc exec``. With ``--tty``, like runc, it puts the caller's terminal (if stdin is one) in raw
mode, copies input to the container's pty master and output back, and on SIGWINCH copies the caller's window
size to the container's terminal (the kernel then signals the process there). It ends when the process has
exited and its output is drained (the master reads EIO once nothing holds the slave, or after a short grace for
background processes that keep it open).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import termios
import time
import tty

DRAIN_AFTER_EXIT_S = 0.2
RELAYED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
           signal.SIGWINCH, signal.SIGCONT)


def exit_status(status: int) -> int:
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def wait(child: int) -> int:
    def relay_signal(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signum)

    for signum in RELAYED:
        signal.signal(signum, relay_signal)
    return exit_status(os.waitpid(child, 0)[1])


def _copy_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


def relay_terminal(child: int, master: int) -> int:
    saved = None
    if os.isatty(0):
        with contextlib.suppress(termios.error):
            saved = termios.tcgetattr(0)
            tty.setraw(0)
        _copy_size(0, master)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGWINCH, lambda *_: _copy_size(0, master))
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(signum, lambda n, _f: os.kill(child, n))
    status = None
    drain_until = None
    reading_stdin = True
    try:
        while True:
            if status is None:
                pid, raw = os.waitpid(child, os.WNOHANG)
                if pid == child:
                    status = exit_status(raw)
                    drain_until = time.monotonic() + DRAIN_AFTER_EXIT_S
            if drain_until is not None and time.monotonic() > drain_until:
                break
            readers = [master, wake_r] + ([0] if reading_stdin else [])
            try:
                ready, _, _ = select.select(readers, [], [], 0.05 if drain_until else 1.0)
            except InterruptedError:
                continue
            if wake_r in ready:
                os.read(wake_r, 512)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    _write_all(master, data)
                else:
                    reading_stdin = False
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: nothing holds the terminal any more
                    data = b""
                if not data:
                    if status is None:
                        status = exit_status(os.waitpid(child, 0)[1])
                    break
                _write_all(1, data)
    finally:
        if saved is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return status
