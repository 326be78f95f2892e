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
import os
import sys
import time

from rich.console import Console
from rich.table import Table

from mmgat.model.command import (INTERRUPTED, OneLineParser, StopSignals, UsageError,
                                 add_common_arguments, ignore_further_signals, run_command)
from mmgat.stream.options import add_runtime_arguments, check_runtime_args, use_threads

PROG = "mmgat-live"
DEFAULT_HOP = 1.0  # seconds, when the artifact does not say
LOADING = "loading the model ..."
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # between attempts; then every 8 s until Ctrl-C
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
                        "(default: the model's, else 1.0; 0.25 gives four updates a second)")
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
    """Flag values that are wrong whatever the model says."""
    from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
    from mmgat.stream.stream import hop_samples

    check_runtime_args(args)
    if args.hop is not None:
        try:
            hop_samples(args.hop)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
    if args.duration is not None and not args.duration * SAMPLE_RATE >= FRAME_SAMPLES:
        raise UsageError(f"--duration must be at least one frame ({FRAME_SAMPLES / SAMPLE_RATE:g} s), "
                         f"got {args.duration:g}")
    if args.jsonl == "-" and args.csv == "-":
        raise UsageError("--jsonl and --csv cannot both write to stdout")
    if args.reconnect and (args.file is not None or args.stdin_format is not None or args.demo):
        raise UsageError("--reconnect is for input devices, not files or stdin")


def open_source(args):
    from mmgat.model.audio import AudioError
    from mmgat.model.frontend import ASSETS
    from mmgat.stream import sources

    paced = not args.as_fast_as_possible
    if args.demo:
        clip = ASSETS / "demo.flac"
        if not clip.is_file():
            raise AudioError(f"the demo clip is missing ({clip}); reinstall mmgat-live, or use --file")
        return sources.open_file(clip, paced)
    if args.file is not None:  # "" too: an error, not the default device
        return sources.open_file(args.file, paced)
    if args.stdin_format is not None:
        return sources.open_stdin(args.stdin_format, paced)
    return sources.DeviceSource(args.device)


def reopen_device(spec: str | None, notice):
    """--reconnect: try to open the device again, backing off, until it opens (or Ctrl-C)."""
    from mmgat.stream.sources import DeviceSource, SourceError, refresh_devices

    attempt = 0
    while True:
        time.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
        attempt += 1
        refresh_devices()
        try:
            return DeviceSource(spec)
        except SourceError as error:
            notice(f"reconnect attempt {attempt}: {error}")


def list_devices(console: Console) -> None:
    from mmgat.stream.sources import NO_INPUT_DEVICES, SourceError, list_input_devices

    devices = list_input_devices()
    if not devices:
        raise SourceError(NO_INPUT_DEVICES)
    table = Table(title="input devices")
    for column in ("index", "name", "host API", "channels", "default rate", "default"):
        table.add_column(column, justify="right" if column in ("index", "channels", "default rate") else "left")
    for device in devices:
        table.add_row(str(device["index"]), device["name"], device["hostapi"], str(device["channels"]),
                      f"{device['rate']:g} Hz", "*" if device["default"] else "")
    console.print(table)


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
    console = Console(stderr=args.jsonl == "-" or args.csv == "-")
    if args.list_devices:
        list_devices(Console())
        return 0
    dashboard = not args.no_display and sys.stdout.isatty() and console.is_terminal
    with loading_notice(console, dashboard) as loaded:  # before the slow imports
        check_args(args)
        use_threads(args.threads)
        return stream_to_outputs(args, console, dashboard, loaded, stop)


def stream_to_outputs(args, console: Console, dashboard: bool, loaded, stop: StopSignals) -> int:
    """The model loaded, the stream run into the display and the sinks; `loaded()` is called
    once the model is ready, just before the dashboard starts."""
    from mmgat.model.audio import SAMPLE_RATE
    from mmgat.stream.display import LiveDisplay, PlainLines, RunInfo, latency_table
    from mmgat.stream.options import load_pipeline, window_of
    from mmgat.stream.scheduler import run
    from mmgat.stream.sinks import CsvSink, JsonlSink, record
    from mmgat.stream.sources import DeviceLost, too_short
    from mmgat.stream.stream import Stream, hop_samples

    source = open_source(args)
    stream, outputs, interrupted = None, [], False
    try:
        pipeline = load_pipeline(args.model, args.cpu, args.precision, args.threads)
        session, frontend = pipeline.session, pipeline.frontend
        hop = args.hop if args.hop is not None else float(session.metadata.get("hop") or DEFAULT_HOP)
        limit = None if args.duration is None else int(round(args.duration * SAMPLE_RATE))
        stream = Stream(source, window_of(pipeline, args.window), hop_samples(hop), limit=limit,
                        **session.graph)
        info = RunInfo(source=source.description, rate=source.rate, channels=source.channels,
                       model=str(session.path), provider=session.provider,
                       frontend=f"{frontend.name} {frontend.recorded_fingerprint or ''} "
                                f"{frontend.precision} on {frontend.device}",
                       window=stream.window, hop=hop, classes=pipeline.classes,
                       groups=tuple(session.metadata["groups"]), thresholds=session.thresholds)
        sinks = ([JsonlSink(args.jsonl)] if args.jsonl else []) \
            + ([CsvSink(args.csv, info.classes)] if args.csv else [])
        screen = LiveDisplay(console, info, pipeline.stats) if dashboard else PlainLines(console, info)
        outputs = [*sinks, screen]

        def emit(update):
            rec = record(update, info.classes, info.groups)
            with stop.deferred():
                for sink in sinks:
                    sink.write(rec)
            screen.update(update)

        loaded()
        screen.start()
        try:
            while True:
                try:
                    run(pipeline, [stream], emit)
                    break
                except DeviceLost as fault:  # reported in every output, then exit 1 or retry
                    for sink in sinks:
                        sink.write_error(stream.received / SAMPLE_RATE, str(fault))
                    if not args.reconnect:
                        raise
                    screen.notice(f"{fault}; reconnecting")
                    stream.close()
                    stream.replace_source(reopen_device(args.device, screen.notice))
                    screen.notice(f"reconnected: {stream.source.description}")
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C or SIGTERM: what was written stays whole
        except BrokenPipeError:
            # The reader of stdout left: stop quietly, and let later flushes go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if stream.frames == 0 and stream.source.finished:
            raise too_short(source.description, stream.received, SAMPLE_RATE)
    finally:
        ignore_further_signals()
        for output in outputs:
            output.close()
        (stream or source).close()
    if args.latency_report:
        console.print(latency_table(pipeline.stats))
    return INTERRUPTED if interrupted else 0


def main(argv=None) -> int:
    return run_command(PROG, build_parser, live, argv)


if __name__ == "__main__":
    sys.exit(main())
