"""`mmgat-live`: recognise instruments in a live input, every hop, from a device, file or pipe.

    mmgat-live                          # the default input device, with the dashboard
    mmgat-live --device 2 --hop 0.25    # four updates a second
    mmgat-live --device USB --reconnect # wait for the device to come back if it goes away
    mmgat-live --file song.flac --as-fast-as-possible --jsonl - --no-display
    arecord -f S16_LE -r 16000 -c 1 | mmgat-live --stdin-format s16le:16000:1
    mmgat-live --demo
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from rich.console import Console
from rich.table import Table

from mmgat.commands.command import (INTERRUPTED, OneLineParser, StopSignals, UsageError,
                                 add_common_arguments, ignore_further_signals, run_command)
from mmgat.stream.options import add_runtime_arguments, check_flag, check_runtime_args, use_threads

PROG = "mmgat-live"
LOADING = "loading the model ..."
log = logging.getLogger("mmgat.stream.cli")  # not __name__: "__main__" under python -m


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--device", metavar="DEV", help="input device: index or name substring "
                        "(default: the system's default input)")
    source.add_argument("--file", metavar="PATH", help="an audio file (anything libsndfile reads)")
    source.add_argument("--stdin-format", metavar="FMT", help="raw PCM on stdin: ENCODING:RATE:CHANNELS, "
                        "ENCODING one of s16le, s32le, f32le (e.g. s16le:16000:1)")
    source.add_argument("--demo", action="store_true", help="stream the clip shipped with the package")
    parser.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    parser.add_argument("--reconnect", action="store_true", help="when the device goes away, report it "
                        "and keep trying to open it again (default: report it and exit 1)")
    parser.add_argument("--hop", type=float, metavar="S", help="seconds between updates; frames stay 1 s "
                        "(default: the model's; 0.25 gives four updates a second)")
    add_runtime_arguments(parser)
    parser.add_argument("--no-display", action="store_true", help="plain lines instead of the dashboard")
    parser.add_argument("--as-fast-as-possible", action="store_true",
                        help="files and stdin: do not pace to real time")
    parser.add_argument("--jsonl", metavar="PATH", help="one JSON record per update ('-': stdout)")
    parser.add_argument("--csv", metavar="PATH", help="one CSV row per update ('-': stdout)")
    parser.add_argument("--latency-report", action="store_true", help="print p50/p95/p99 per stage at exit")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of stream time")
    add_common_arguments(parser)
    return parser


def check_args(args) -> None:
    """Flag values that are wrong whatever the model says: checked before anything loads."""
    # Imported here, not above: they bring numpy and the audio libraries, which --help does not need.
    from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
    from mmgat.stream.settings import hop_samples
    from mmgat.stream.sources import parse_stdin_format

    check_runtime_args(args)
    if args.hop is not None:
        check_flag(hop_samples, args.hop)
    if args.duration is not None and not args.duration * SAMPLE_RATE >= FRAME_SAMPLES:
        raise UsageError(f"--duration must be at least one frame ({FRAME_SAMPLES / SAMPLE_RATE:g} s), "
                         f"got {args.duration:g}")
    if args.stdin_format is not None:
        try:
            parse_stdin_format(args.stdin_format)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.jsonl == "-" and args.csv == "-":
        raise UsageError("--jsonl and --csv cannot both write to stdout")
    if args.reconnect and (args.file is not None or args.stdin_format is not None or args.demo):
        raise UsageError("--reconnect is for input devices, not files or stdin")


def list_devices(console: Console) -> None:
    """The input devices as a table (empty, with a hint, on a machine without any)."""
    # Imported here, not above: as in check_args.
    from mmgat.stream.sources import NO_INPUT_DEVICES, list_input_devices

    devices = list_input_devices()
    table = Table(title="input devices")
    for column in ("index", "name", "host API", "channels", "default rate", "default"):
        table.add_column(column, justify="right" if column in ("index", "channels", "default rate") else "left")
    for device in devices:
        table.add_row(str(device["index"]), device["name"], device["hostapi"], str(device["channels"]),
                      f"{device['rate']:g} Hz", "*" if device["default"] else "")
    console.print(table)
    if not devices:
        console.print(NO_INPUT_DEVICES, soft_wrap=True, highlight=False, markup=False)


@contextlib.contextmanager
def loading_notice(console: Console, dashboard: bool):
    """What a run shows first, before the slow imports (a cold start takes 12-17 s: imports, numba
    compilation, warm-up): a spinner in the dashboard's terminal until the dashboard takes over,
    else one log line. Yields what stops the spinner; leaving stops it too, so an error
    line never lands beside it."""
    if not dashboard:
        log.info(LOADING)
        yield lambda: None
        return
    status = console.status(LOADING)
    status.start()
    try:
        yield status.stop
    finally:
        status.stop()


def live(args, stop: StopSignals) -> int:
    """Stream until the source ends, the duration is reached or a signal comes."""
    if args.list_devices:
        list_devices(Console())
        return 0
    check_args(args)  # usage errors exit 2 at once, before anything shows or loads
    console = Console(stderr=args.jsonl == "-" or args.csv == "-")
    dashboard = not args.no_display and not args.quiet and sys.stdout.isatty() and console.is_terminal
    with loading_notice(console, dashboard) as loaded:
        # Imported here, not above: the runtime (numba, ONNX Runtime, the frontend) takes
        # seconds to import, which usage errors and --help must not wait for.
        from mmgat.stream.live import LiveRun

        use_threads(args.threads)
        wired = LiveRun(args, console, dashboard, stop)
        try:
            loaded()
            interrupted = wired.stream_to_outputs()
        finally:
            ignore_further_signals()
            wired.close()
    if args.latency_report:
        wired.print_latency()
    return INTERRUPTED if interrupted else 0


def main(argv=None) -> int:
    return run_command(PROG, build_parser, live, argv)


if __name__ == "__main__":
    sys.exit(main())
