"""What every command (mmgat-live, mmgat-tag, mmgat-train, mmgat-export) does the same way:
errors as one line on stderr (`--debug` shows the traceback instead), `-v` / `-q` for the log
level, stop signals, and one exit status per outcome:

    0    done
    1    a user error: a file, device, model or value that cannot be used
    2    a usage error (flags), or an optional dependency that is not installed
    130  stopped by Ctrl-C, SIGTERM or SIGHUP (the terminal closed), after writing what was done

User errors are ValueError and OSError subclasses (AudioError, SourceError, ModelError, ...);
only the commands set process-wide state (log handlers, signal handlers, thread counts).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from typing import Callable

USER_ERROR, USAGE_ERROR, INTERRUPTED = 1, 2, 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Every module logs under it: logging.getLogger(__name__), or, in a command module that also
# runs as __main__ (python -m), its dotted name spelled out.
LOGGER = "mmgat"


class UsageError(ValueError):
    """Bad flags, or a missing optional dependency: one line, exit 2."""


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in the same one-line form as every other error."""

    def error(self, message: str):
        raise UsageError(message)


def add_common_arguments(parser: argparse.ArgumentParser, subcommand: bool = False) -> None:
    """-v, -q, --debug. On a subcommand's parser too (`mmgat-train fit -v`), where they have no
    default: a subcommand's defaults would overwrite what the top-level parser set
    (`mmgat-train -v fit`)."""
    default = {"default": argparse.SUPPRESS} if subcommand else {}
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log lines too", **default)
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only", **default)
    parser.add_argument("--debug", action="store_true", help="on an error, the traceback instead "
                        "of one line", **default)


class _Lines(logging.Formatter):
    """`prog: message` for information, `prog: warning: message` for the rest."""

    def __init__(self, prog: str):
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return f"{self.prog}: {level}{record.getMessage()}"


def configure_logging(prog: str, verbose: bool = False, quiet: bool = False) -> None:
    """The package's log lines on stderr at INFO (-v: DEBUG, -q: WARNING); nothing else's."""
    logger = logging.getLogger(LOGGER)
    for handler in list(logger.handlers):  # main() may run more than once in one process
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines(prog))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def report_error(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)


class StopSignals:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, except inside
    `deferred()`, which raises it at its end instead."""

    def __init__(self):
        self.holding = self.pending = False

    def interrupt(self, signum, frame):
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """What must finish whole (an update reaching every sink or none). Blocking the signals
        would not do: another thread may take them."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def stop_signals():
    """Every stop signal as KeyboardInterrupt (also where SIGINT came in ignored: a background
    job of a script); yields the StopSignals; the previous handlers are back afterwards (main()
    may run inside another program)."""
    stop = StopSignals()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in previous:
        signal.signal(signum, stop.interrupt)
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ignore_further_signals() -> None:
    """While shutting down, a second Ctrl-C must not interrupt the cleanup with a traceback."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def run_command(prog: str, build_parser: Callable[[], argparse.ArgumentParser],
                body: Callable[[argparse.Namespace, StopSignals], int | None], argv=None,
                extras: str = "") -> int:
    """Build the parser (it may import what a command needs), parse argv, set up logging and
    stop signals, run body(args, stop); the exit status. `extras` says how to install the
    optional modules the command may import."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)  # also for errors before parsing
    try:
        args = build_parser().parse_args(argv)
        configure_logging(prog, args.verbose, args.quiet)
        with stop_signals() as stop:
            return int(body(args, stop) or 0)
    except KeyboardInterrupt:  # before the body could finish what it was doing
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except ModuleNotFoundError as error:  # an optional dependency
        if debug:
            raise
        report_error(prog, f"missing module {error.name}" + (f"; {extras}" if extras else ""))
        return USAGE_ERROR
    except UsageError as error:
        if debug:
            raise
        report_error(prog, first_line(error))
        return USAGE_ERROR
    except (ValueError, OSError) as error:
        if debug:
            raise
        report_error(prog, first_line(error))
        return USER_ERROR
