"""ocirun's command line: runc's global flags, its subcommands and their flags, as kubemini's runtime calls them.

``ocirun [--root R] [--log F] [--log-format json|text] COMMAND [flags] ID [ARGS...]`` with COMMAND one of
create, start, run (with --detach only: create, then start), state, kill, delete, update, exec. Flags are accepted
with one or two dashes and ``--flag=value``, up to the first positional argument (like runc's command-line
library). Errors are reported as runc reports them (see ``errors.py``).
"""

from __future__ import annotations

import sys

from kubelet.runtime.process.errors import Failure, describe, report

DEFAULT_ROOT = "/run/kubemini-ocirun"
VERSION = "ocirun (kubemini process backend) 0.1, spec 1.0.2"
GLOBAL_FLAGS = {"root": 1, "log": 1, "log-format": 1, "debug": 0, "systemd-cgroup": 0, "criu": 1, "rootless": 1}
COMMANDS = {  # command: {flag: takes a value?}, aliases folded in by ALIASES
    "create": {"bundle": 1, "pid-file": 1, "console-socket": 1, "no-pivot": 0, "no-new-keyring": 0,
               "preserve-fds": 1},
    "run": {"bundle": 1, "pid-file": 1, "console-socket": 1, "no-pivot": 0, "no-new-keyring": 0,
            "preserve-fds": 1, "detach": 0},
    "start": {},
    "state": {},
    "kill": {"all": 0},
    "delete": {"force": 0},
    "update": {"resources": 1},
    "exec": {"tty": 0, "pid-file": 1, "env": 1, "cwd": 1, "detach": 0, "no-new-privs": 0},
}
ALIASES = {"b": "bundle", "a": "all", "f": "force", "r": "resources", "t": "tty", "e": "env", "d": "detach"}
REPEATED = {"env"}


def parse_flags(args: list[str], known: dict[str, int]) -> tuple[dict, list[str]]:
    """Leading flags of ``args`` → (values, the rest). Repeated flags in REPEATED collect into lists."""
    values: dict = {}
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            index += 1
            break
        if not token.startswith("-") or token == "-":
            break
        name, has_value, value = token.lstrip("-").partition("=")
        name = ALIASES.get(name, name)
        if name not in known:
            raise Failure(f"flag provided but not defined: {token.split('=')[0]}")
        if known[name] and not has_value:
            index += 1
            if index >= len(args):
                raise Failure(f"flag needs an argument: {token}")
            value = args[index]
        elif not known[name]:
            value = value.lower() not in ("false", "0") if has_value else True
        if name in REPEATED:
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
        index += 1
    return values, args[index:]


def run(argv: list[str]) -> int:
    if argv[:1] in (["--version"], ["-v"]):
        sys.stdout.write(VERSION + "\n")
        return 0
    global_flags, rest = parse_flags(argv, GLOBAL_FLAGS)
    if not rest:
        raise Failure(f"usage: ocirun [--root DIR] COMMAND ...; commands: {', '.join(COMMANDS)}")
    command, rest = rest[0], rest[1:]
    if command == "version":
        sys.stdout.write(VERSION + "\n")
        return 0
    if command not in COMMANDS:
        raise Failure(f"No help topic for '{command}'")
    flags, positional = parse_flags(rest, COMMANDS[command])
    if not positional:
        raise Failure(f'"{command}" requires a container id')
    root = global_flags.get("root") or DEFAULT_ROOT
    container_id = positional[0]
    if command in ("create", "run"):
        from kubelet.runtime.process.create import create
        from kubelet.runtime.process.lifecycle import start

        if command == "run" and not flags.get("detach"):
            raise Failure("run without --detach is not supported by the process backend")
        create(root, container_id, flags.get("bundle", ""), flags.get("pid-file"), flags.get("console-socket"))
        if command == "run":
            start(root, container_id)
    elif command == "exec":
        from kubelet.runtime.process.execute import exec_

        if flags.get("detach"):
            raise Failure("exec --detach is not supported by the process backend")
        return exec_(root, container_id, positional[1:], tty=bool(flags.get("tty")), pid_file=flags.get("pid-file"),
                     env=flags.get("env", []), cwd=flags.get("cwd"))
    else:
        from kubelet.runtime.process import lifecycle

        if command == "start":
            lifecycle.start(root, container_id)
        elif command == "state":
            lifecycle.show(root, container_id)
        elif command == "kill":
            lifecycle.kill(root, container_id, positional[1] if len(positional) > 1 else "SIGTERM",
                           bool(flags.get("all")))
        elif command == "delete":
            lifecycle.delete(root, container_id, bool(flags.get("force")))
        else:
            lifecycle.update(root, container_id, flags.get("resources"))
    return 0


def main(argv: list[str]) -> int:
    log_path, log_format = None, "text"
    try:
        global_flags, _ = parse_flags([a for a in argv if a not in ("--version", "-v")], GLOBAL_FLAGS)
        log_path, log_format = global_flags.get("log"), global_flags.get("log-format", "text")
        return run(argv)
    except Failure as e:
        report(str(e), log_path, log_format)
        return e.status
    except Exception as e:  # a bug or an unexpected system error: still report it like runc would
        report(describe(e), log_path, log_format)
        return 1
