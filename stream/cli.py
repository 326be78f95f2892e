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
import os
import signal
import sys
import time

from rich.console import Console
from rich.table import Table

PROG = "mmgat-live"
DEFAULT_WINDOW = 10  # frames, when the artifact does not say
DEFAULT_HOP = 1.0  # seconds, when the artifact does not say
LOADING = "loading the model ..."
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # between attempts; then every 8 s until Ctrl-C
# model.frontend.PRECISIONS, spelled here so that argument parsing need not import torch.
FRONTEND_PRECISIONS = ("int8", "bf16", "fp32")


class OneLineParser(argparse.ArgumentParser):
    """Usage errors in the same single-line form as every other user error."""

    def error(self, message: str):
        report_error(message)
        sys.exit(2)


def report_error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


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
    parser.add_argument("--window", type=int, metavar="W", help="frames (seconds) in the graph, 1..64 "
                        "(default: the model's, else 10)")
    parser.add_argument("--hop", type=float, metavar="S", help="seconds between updates; frames stay 1 s "
                        "(default: the model's, else 1.0; 0.25 gives four updates a second)")
    parser.add_argument("--model", metavar="PATH", help="exported MMGAT artifact (default: the shipped one)")
    parser.add_argument("--cpu", action="store_true", help="run the frontend and ONNX Runtime on the CPU")
    parser.add_argument("--precision", choices=FRONTEND_PRECISIONS,
                        help="the frontend's arithmetic (default: int8 on the CPU, bf16 on CUDA)")
    parser.add_argument("--no-display", action="store_true", help="plain lines instead of the dashboard")
    parser.add_argument("--as-fast-as-possible", action="store_true",
                        help="files and stdin: do not pace to real time")
    parser.add_argument("--jsonl", metavar="PATH", help="one JSON record per update ('-': stdout)")
    parser.add_argument("--csv", metavar="PATH", help="one CSV row per update ('-': stdout)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="intra-op threads of ONNX Runtime and of a CPU frontend (default 1)")
    parser.add_argument("--latency-report", action="store_true", help="print p50/p95/p99 per stage at exit")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds of stream time")
    return parser


def check_args(args) -> None:
    """Flag values that are wrong whatever the model says."""
    from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
    from mmgat.stream.pipeline import check_window, hop_samples

    if args.window is not None:
        check_window(args.window)
    if args.hop is not None:
        hop_samples(args.hop)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if args.duration is not None and not args.duration * SAMPLE_RATE >= FRAME_SAMPLES:
        raise ValueError(f"--duration must be at least one frame ({FRAME_SAMPLES / SAMPLE_RATE:g} s), "
                         f"got {args.duration:g}")
    if args.jsonl == "-" and args.csv == "-":
        raise ValueError("--jsonl and --csv cannot both write to stdout")
    if args.reconnect and (args.file is not None or args.stdin_format is not None or args.demo):
        raise ValueError("--reconnect is for input devices, not files or stdin")


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
    else one line on stderr. Yields what stops the spinner; leaving stops it too, so an error
    line never lands beside it."""
    if not dashboard:
        print(f"{PROG}: {LOADING}", file=sys.stderr, flush=True)
        yield lambda: None
        return
    status = console.status(LOADING)
    status.start()
    try:
        yield status.stop
    finally:
        status.stop()


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Ctrl-C, SIGTERM and SIGHUP (the terminal closed) raise KeyboardInterrupt in the main thread,
    except inside `deferred()`, which raises it at its end instead."""

    def __init__(self):
        self.holding = self.pending = False

    def interrupt(self, signum, frame):
        if self.holding:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        """An update reaches every sink or none: a JSONL and a CSV of one run hold the same
        updates. (Blocking the signals would not do: another thread may take them.)"""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def signals_interrupt():
    """Stop signals stop the run (KeyboardInterrupt: sinks flushed, stream closed, exit 0), also
    where SIGINT came in ignored (a background job of a script); yields the StopSignals; the
    previous handlers are back afterwards (main() may run inside another program)."""
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


def prepare(args, source):
    """Model, frontend, stream state and the facts the display shows -> (pipeline, state, info)."""
    import torch

    from mmgat.export.runtime import load_runtime
    from mmgat.model.audio import SAMPLE_RATE
    from mmgat.stream.display import RunInfo
    from mmgat.stream.pipeline import Pipeline, StreamState, hop_samples

    session, frontend = load_runtime(args.model, cpu=args.cpu, intra_op_threads=args.threads,
                                     precision=args.precision)
    if frontend.device.type == "cpu":
        # torch would take every core; on a shared or small machine its threads then wait on each
        # other (a 2-core box measured 35 ms per frame on one thread, 80-380 ms on two when busy).
        torch.set_num_threads(args.threads)
    meta = session.metadata
    window = args.window if args.window is not None else int(meta.get("window") or DEFAULT_WINDOW)
    hop = args.hop if args.hop is not None else float(meta.get("hop") or DEFAULT_HOP)
    limit = None if args.duration is None else int(round(args.duration * SAMPLE_RATE))
    state = StreamState(window, hop_samples(hop), limit=limit, **session.graph)
    info = RunInfo(source=source.description, rate=source.rate, channels=source.channels,
                   model=str(session.path), provider=session.provider,
                   frontend=f"{frontend.name} {frontend.recorded_fingerprint or ''} {frontend.precision} "
                            f"on {frontend.device}",
                   window=window, hop=hop, classes=tuple(meta["classes"]), groups=tuple(meta["groups"]),
                   thresholds=session.thresholds)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    return pipeline, state, info


def live(args, console: Console, dashboard: bool, loaded, stop: StopSignals) -> None:
    """Stream until the source ends, the duration is reached or a signal comes; `loaded()` is
    called once the model is ready, just before the dashboard starts."""
    from mmgat.model.audio import SAMPLE_RATE
    from mmgat.stream.display import LiveDisplay, PlainLines, latency_table
    from mmgat.stream.runner import LiveStream, run
    from mmgat.stream.sinks import CsvSink, JsonlSink, record
    from mmgat.stream.sources import DeviceLost, too_short

    source = open_source(args)
    sinks, screens = [], []
    try:
        pipeline, state, info = prepare(args, source)
        if args.jsonl:
            sinks.append(JsonlSink(args.jsonl))
        if args.csv:
            sinks.append(CsvSink(args.csv, info.classes))
        screens.append(LiveDisplay(console, info, pipeline.stats) if dashboard else PlainLines(console, info))

        def emit(update):
            rec = record(update, info.classes, info.groups, info.thresholds)
            with stop.deferred():
                for sink in sinks:
                    sink.write(rec)
            screens[0].update(update)

        loaded()
        screens[0].start()
        try:
            while True:
                try:
                    run([LiveStream(source, state)], pipeline, emit)
                    break
                except DeviceLost as fault:  # reported in every output, then exit 1 or retry
                    for sink in sinks:
                        sink.write_error(state.received / SAMPLE_RATE, str(fault))
                    if not args.reconnect:
                        raise
                    screens[0].notice(f"{fault}; reconnecting")
                    source.close()
                    source = None
                    source = reopen_device(args.device, screens[0].notice)
                    screens[0].notice(f"reconnected: {source.description}")
        except KeyboardInterrupt:
            pass  # Ctrl-C or SIGTERM: a normal way to stop
        except BrokenPipeError:
            # The reader of stdout left: stop quietly, and let later flushes go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if state.frames == 0 and source is not None and source.finished:
            raise too_short(source.description, state.received, SAMPLE_RATE)
    finally:
        ignore_further_signals()
        for output in (*sinks, *screens):
            output.close()
        if source is not None:
            source.close()
    if args.latency_report:
        console.print(latency_table(pipeline.stats))


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=args.jsonl == "-" or args.csv == "-")
    dashboard = not args.no_display and sys.stdout.isatty() and console.is_terminal
    try:
        if args.list_devices:
            list_devices(Console())
            return 0
        with loading_notice(console, dashboard) as loaded:  # before the slow imports
            check_args(args)
            with signals_interrupt() as stop:
                live(args, console, dashboard, loaded, stop)
    except KeyboardInterrupt:
        return 0  # stopped before streaming began (e.g. while the model loaded)
    except (ValueError, OSError) as error:  # user errors: every module raises ValueError subclasses
        report_error(str(error).splitlines()[0] if str(error) else type(error).__name__)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
