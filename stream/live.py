"""One `mmgat-live` run (cli.py parses and checks the flags, then hands them here): the source
opened first (a bad input fails before the model loads), the model loaded, the stream, the
display and the sinks wired; then the stream run into them until the source ends, the duration
is reached or a signal comes, reopening a device that went away when asked to.
"""

from __future__ import annotations

import os
import sys
import time

from rich.console import Console

from mmgat.commands.command import StopSignals
from mmgat.model.audio import SAMPLE_RATE, AudioError
from mmgat.model.frontend_file import ASSETS
from mmgat.stream import sources
from mmgat.stream.display import LiveDisplay, PlainLines, RunInfo, Silent, latency_table
from mmgat.stream.options import load_pipeline
from mmgat.stream.pipeline import Update
from mmgat.stream.scheduler import run
from mmgat.stream.settings import StreamSettings
from mmgat.stream.sinks import CsvSink, JsonlSink, record
from mmgat.stream.stream import Stream

RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # between attempts; then every 8 s until Ctrl-C


def open_source(args) -> sources.Source:
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


def reopen_device(spec: str | None, notice) -> sources.DeviceSource:
    """--reconnect: try to open the device again, backing off, until it opens (or Ctrl-C)."""
    attempt = 0
    while True:
        time.sleep(RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)])
        attempt += 1
        sources.refresh_devices()
        try:
            return sources.DeviceSource(spec)
        except sources.SourceError as error:
            notice(f"reconnect attempt {attempt}: {error}")


class LiveRun:
    """The wired run. Made, it holds an open source (and, once loaded, the model, stream and
    outputs); `close()` releases whatever it holds, whatever happened."""

    def __init__(self, args, console: Console, dashboard: bool, stop: StopSignals):
        self.args, self.console, self.stop = args, console, stop
        self.source = open_source(args)
        self.stream, self.outputs = None, []
        try:
            self._load(dashboard)
        except BaseException:
            self.close()
            raise

    def _load(self, dashboard: bool) -> None:
        args, source = self.args, self.source
        self.pipeline = pipeline = load_pipeline(args.model, args.cpu, args.precision, args.threads)
        session, frontend = pipeline.session, pipeline.frontend
        settings = StreamSettings.for_model(session, window=args.window, hop_s=args.hop)
        limit = None if args.duration is None else int(round(args.duration * SAMPLE_RATE))
        self.stream = Stream(source, settings, limit=limit)
        self.info = info = RunInfo(
            source=source.description, rate=source.rate, channels=source.channels, model=str(session.path),
            provider=session.provider, settings=settings, classes=pipeline.classes,
            frontend=(f"{frontend.name} {frontend.recorded_fingerprint or ''} {frontend.precision} "
                      f"on {frontend.device}"),
            groups=tuple(session.metadata["groups"]), thresholds=session.thresholds)
        with self.stop.deferred():  # a stop signal waits until each file holds its header
            self.sinks = ([JsonlSink(args.jsonl, info.classes)] if args.jsonl else []) \
                + ([CsvSink(args.csv, info.classes)] if args.csv else [])
            self.outputs = list(self.sinks)  # closed by close() if that signal comes now
        self.screen = (Silent() if args.quiet else LiveDisplay(self.console, info, pipeline.stats) if dashboard
                       else PlainLines(self.console, info))
        self.outputs = [*self.sinks, self.screen]

    def emit(self, update: Update) -> None:
        """An update to every sink or none (a signal waits for the last sink), then the screen."""
        rec = record(update, self.info.classes, self.info.groups)
        with self.stop.deferred():
            for sink in self.sinks:
                sink.write(rec)
        self.screen.update(update)

    def stream_to_outputs(self) -> bool:
        """Until the source ends or the duration is reached (False) or a stop signal comes (True)."""
        self.screen.start()
        try:
            while True:
                try:
                    run(self.pipeline, [self.stream], self.emit)
                    break
                except sources.DeviceLost as fault:
                    self.device_lost(fault)
        except KeyboardInterrupt:
            return True  # Ctrl-C or SIGTERM: what was written stays whole
        except BrokenPipeError:
            # The reader of stdout left: stop quietly, and let later flushes go nowhere.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if self.stream.frames == 0 and self.stream.flushed:
            raise sources.too_short(self.stream.description, self.stream.received, SAMPLE_RATE)
        return False

    def device_lost(self, fault: sources.DeviceLost) -> None:
        """Reported in every output; then raised (exit 1), or the device reopened (--reconnect)."""
        for sink in self.sinks:
            sink.write_error(self.stream.received / SAMPLE_RATE, str(fault))
        if not self.args.reconnect:
            raise fault
        self.screen.notice(f"{fault}; reconnecting")
        self.stream.close()
        self.stream.replace_source(reopen_device(self.args.device, self.screen.notice))
        self.screen.notice(f"reconnected: {self.stream.description}")

    def print_latency(self) -> None:
        self.console.print(latency_table(self.pipeline.stats))

    def close(self) -> None:
        """The outputs flushed and closed, then the stream (or the source, if the model never loaded)."""
        for output in self.outputs:
            output.close()
        (self.stream or self.source).close()
