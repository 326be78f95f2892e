"""Human-readable outputs: a rich Live dashboard, or one plain line per update.

The dashboard shows every instrument with a probability bar (its threshold marked), a heat strip
of per-second activity over the window (one cell per second, newest on the right), the input
level, stream and model facts, per-stage latency p50/p99 and the overrun count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from mmgat.stream.latency import STAGES, LatencyStats
from mmgat.stream.pipeline import Update
from mmgat.stream.settings import StreamSettings

BAR_CELLS = 24
EIGHTHS = " ▏▎▍▌▋▊▉█"
HEAT_CELLS = "·░▒▓█"  # per-second activity, lowest to highest
HEAT_STYLES = ("grey35", "green4", "green3", "green1", "bold bright_green")
METER_CELLS = 20
METER_FLOOR_DBFS = -60.0  # the level meter's left end
TABLE_WIDTH_WITHOUT_HEAT = 60  # name + bar + numbers + padding: what is left shows seconds
FULL_HEIGHT = 30  # rows the boxed layout needs; shorter terminals (80 x 24) get the compact one
log = logging.getLogger(__name__)


@dataclass
class RunInfo:
    """Facts about the run that the display shows next to the scores."""

    source: str
    rate: int
    channels: int
    model: str
    provider: str
    frontend: str
    settings: StreamSettings
    classes: tuple
    groups: tuple
    thresholds: np.ndarray

    def summary(self) -> str:
        return (f"{self.source} ({self.rate} Hz x {self.channels} -> 16 kHz mono) | model {self.model} "
                f"on {self.provider} | frontend {self.frontend} | window {self.settings.window} | "
                f"hop {self.settings.hop_s:g} s")


def probability_bar(p: float, threshold: float, active: bool) -> Text:
    filled = min(max(p, 0.0), 1.0) * BAR_CELLS
    whole = int(filled)
    cells = "█" * whole + (EIGHTHS[int((filled - whole) * 8)] if whole < BAR_CELLS else "")
    cells = cells.ljust(BAR_CELLS)
    marker = min(int(threshold * BAR_CELLS), BAR_CELLS - 1)
    bar = Text(cells, style="bold green" if active else "cyan")
    if cells[marker] == " ":
        bar = bar[:marker] + Text("│", style="yellow") + bar[marker + 1:]
    else:
        bar.stylize("on grey23", marker, marker + 1)
    return bar


def heat_strip(activity: np.ndarray, cells: int) -> Text:
    """The last `cells` seconds of one class's activity, oldest left; blank before the stream's start."""
    recent = activity[-cells:] if cells else activity[:0]
    strip = Text(" " * (cells - len(recent)))
    for p in recent:
        level = min(len(HEAT_CELLS) - 1, int(float(p) * len(HEAT_CELLS)))
        strip.append(HEAT_CELLS[level], style=HEAT_STYLES[level])
    return strip


def level_meter(dbfs: float) -> Text:
    filled = int(round(np.clip(1.0 - dbfs / METER_FLOOR_DBFS, 0.0, 1.0) * METER_CELLS))
    style = "red" if dbfs > -3 else "yellow" if dbfs > -12 else "green"
    return Text("█" * filled, style=style) + Text("░" * (METER_CELLS - filled), style="grey35") \
        + Text(f" {dbfs:6.1f} dBFS")


def losses(update: Update) -> str:
    """Samples the ring dropped, and (only when it happened) the device's own input overflows."""
    text = f"overruns {update.overruns}"
    return text + f" (+{update.input_overflows} device overflows)" if update.input_overflows else text


def latency_text(stats: LatencyStats) -> Text:
    report = stats.percentiles((50, 99))
    text = Text("latency ms p50/p99 ", style="bold")
    for stage in STAGES:
        if stage in report:
            text.append(f" {stage} ", style="dim")
            text.append(f"{report[stage][50]:.1f}/{report[stage][99]:.1f}")
    return text


def latency_table(stats: LatencyStats) -> Table:
    table = Table(title="per-stage latency (ms per frame)")
    for column in ("stage", "p50", "p95", "p99", "frames"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for stage, q in stats.percentiles((50, 95, 99)).items():
        table.add_row(stage, f"{q[50]:.2f}", f"{q[95]:.2f}", f"{q[99]:.2f}", str(stats.count(stage)))
    return table


class LiveDisplay:
    """A rich Live dashboard redrawn once per update."""

    def __init__(self, console: Console, info: RunInfo, stats: LatencyStats):
        self.console, self.info, self.stats = console, info, stats
        self.live = Live(Text("waiting for the first frame ..."), console=console, auto_refresh=False,
                         redirect_stdout=False, redirect_stderr=False)

    def start(self) -> None:
        self.live.start(refresh=True)

    def update(self, update: Update) -> None:
        self.live.update(self.render(update), refresh=True)

    def notice(self, message: str) -> None:
        """A line above the dashboard (a device fault, a reconnection)."""
        self.console.print(Text(f"mmgat-live: {message}", style="bold red"))

    def close(self) -> None:
        self.live.stop()

    def render(self, update: Update) -> Group:
        info = self.info
        stream = Text(f"t {update.t:8.2f} s   ") + level_meter(update.level_dbfs) \
            + Text(f"   {losses(update)}", style="red" if update.overruns or update.input_overflows else "")
        heat_cells = max(0, min(info.settings.window, self.console.width - TABLE_WIDTH_WITHOUT_HEAT))
        table = Table(box=None, padding=(0, 1), show_edge=False)
        table.add_column("instrument")
        table.add_column("probability")
        table.add_column("p", justify="right")
        table.add_column("thr", justify="right", style="dim")
        table.add_column(f"last {heat_cells} s" if heat_cells else "", no_wrap=True)
        for c, name in enumerate(info.classes):
            p, threshold = float(update.probs[c]), float(info.thresholds[c])
            active = name in update.active
            table.add_row(Text(name, style="bold green" if active else ""), probability_bar(p, threshold, active),
                          f"{p:.2f}", f"{threshold:.2f}", heat_strip(update.node_probs[:, c], heat_cells))

        groups = Text("onset groups ", style="bold")
        for name, p in zip(info.groups, update.group_probs):
            groups.append(f" {name} {float(p):.2f}")
        window, hop_s = info.settings.window, info.settings.hop_s
        if self.console.height < FULL_HEIGHT:  # no box, the groups beside the stream: 24 rows in all
            facts = Text(f"mmgat-live  ORT {info.provider}  window {window}  hop {hop_s:g} s | "
                         f"frontend {info.frontend} | {info.source} {info.rate} Hz x {info.channels} | "
                         f"model {info.model}")  # most useful first: the end may be cut
            stream_and_groups, latency = stream + Text("   ") + groups, latency_text(self.stats)
            for line in (facts, stream_and_groups, latency):
                line.no_wrap, line.overflow = True, "ellipsis"
            return Group(facts, stream_and_groups, table, latency)
        header = Table.grid(padding=(0, 2))
        header.add_row(Text("source", style="bold"), Text(
            f"{info.source}  {info.rate} Hz x {info.channels} -> 16 kHz mono"))
        header.add_row(Text("model", style="bold"), Text(
            f"{info.model}  ORT {info.provider}  window {window}  hop {hop_s:g} s"))
        header.add_row(Text("frontend", style="bold"), Text(info.frontend))
        header.add_row(Text("stream", style="bold"), stream)
        return Group(Panel(header, title="mmgat-live", title_align="left"), table, groups, latency_text(self.stats))


class Silent:
    """-q: nothing on the terminal but warnings and errors (the sinks still write)."""

    def start(self) -> None:
        pass

    def update(self, update: Update) -> None:
        pass

    def notice(self, message: str) -> None:
        log.warning(message)

    def close(self) -> None:
        pass


class PlainLines:
    """One line per update (no terminal, or --no-display)."""

    def __init__(self, console: Console, info: RunInfo):
        self.console, self.info = console, info

    def start(self) -> None:
        self.console.print(f"mmgat-live: {self.info.summary()}", soft_wrap=True, highlight=False, markup=False)

    def update(self, update: Update) -> None:
        classes = self.info.classes
        top = np.argsort(-update.probs)[:3]
        line = (f"t {update.t:8.2f} s | active: {', '.join(update.active) or '-'} | top: "
                + " ".join(f"{classes[c]} {float(update.probs[c]):.2f}" for c in top)
                + f" | {update.level_dbfs:6.1f} dBFS | {losses(update)}"
                + f" | compute {update.latency_ms['compute']:.1f} ms")
        self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    def notice(self, message: str) -> None:
        self.console.print(f"mmgat-live: {message}", soft_wrap=True, highlight=False, markup=False)

    def close(self) -> None:
        pass
