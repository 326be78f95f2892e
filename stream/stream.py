"""One input stream, from its source to the 1 s frames the pipeline computes.

A `Stream` owns everything of one input: its source (sources.Source), the resampler to 16 kHz
mono, the audio buffer, the frame clock, the instance graphs, the counts of lost input and the
time spent reading. `pull()` moves what the source has through the resampler into the buffer;
`take()` hands out the frames that are ready, each carrying the reading time it cost.
`Pipeline.step` (pipeline.py) computes the frames of many streams at once.

Frames are 1 s long and start every hop: frame k covers stream samples [k * hop, k * hop +
FRAME_SAMPLES). With a hop shorter than a frame, consecutive frames overlap, so each hop phase
keeps its own graph of back-to-back seconds (hop 0.25 s: four graphs, each advanced once a
second). Every update therefore scores the last W seconds ending now, with the non-overlapping
1 s instances the model was trained on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from mmgat.model.audio import EMBED_DIM, FRAME_SAMPLES, SAMPLE_RATE
from mmgat.model.graph import InstanceGraph
from mmgat.stream.resample import StreamResampler
from mmgat.stream.settings import StreamSettings
from mmgat.stream.sources import ArraySource, Source

MAX_PENDING_FRAMES = 8  # ready frames a stream may hold: bounds its audio and its batch share


@dataclass
class Frame:
    """One ready frame of a stream."""

    index: int  # frame k ends at stream sample k * hop + FRAME_SAMPLES
    samples: np.ndarray  # (FRAME_SAMPLES,) 16 kHz mono
    read_ms: float  # its share of the time spent reading and resampling since the last frames


class Stream:
    """One input's source, resampler, clock, audio and graphs, in buffers sized once.

    `audio` holds the 16 kHz samples from the next frame's start on, up to MAX_PENDING_FRAMES
    ready frames; `pull` feeds at most `room()` samples, so a stream that falls behind pushes
    back on its source (whose ring buffer counts what it then drops) instead of growing.
    `limit` (samples) ends the stream early (--duration).
    """

    def __init__(self, source: Source, settings: StreamSettings, limit: int | None = None, name: str = ""):
        self.settings, self.limit = settings, limit
        self.name = name or source.description
        self.graphs = [InstanceGraph(settings.window, EMBED_DIM, settings.neighbours,
                                     similarity=settings.similarity) for _ in range(settings.phases)]
        self.audio = np.zeros(FRAME_SAMPLES + (MAX_PENDING_FRAMES - 1) * settings.hop_samples, np.float32)
        self.audio_start = 0  # stream sample index of audio[0]
        self.filled = 0
        self.frames = 0  # frames taken so far
        self._read_ms = 0.0  # reading + resampling time not yet charged to a frame
        self._lost_before = (0, 0)  # overruns, input overflows of the sources replaced
        self._open(source)

    @classmethod
    def fed(cls, settings: StreamSettings, **options) -> Stream:
        """A stream whose caller feeds it 16 kHz mono audio itself (`feed`), e.g. a program that
        already holds the audio, a benchmark pacing many streams; its source is empty."""
        return cls(ArraySource(np.zeros(0, np.float32), description="fed"), settings, **options)

    def _open(self, source: Source) -> None:
        self.source, self.resampler = source, StreamResampler(source.rate, source.channels)
        self.flushed = False  # the source ended and the resampler's tail was fed
        self.closed = False

    def replace_source(self, source: Source) -> None:
        """Continue from another source (a device reopened after it went away): the clock,
        graphs and loss counts go on; what the old resampler held back is lost with it."""
        self._lost_before = (self.overruns, self.input_overflows)
        self.close()
        self._open(source)

    def start(self) -> None:
        """Let the source begin delivering (a device starts recording, a paced file its clock)."""
        self.source.start()

    @property
    def description(self) -> str:
        """The current source, for messages."""
        return self.source.description

    @property
    def source_seconds(self) -> float:
        """Seconds of input the current source has delivered (a file's length once it ended)."""
        return self.source.consumed / self.source.rate

    @property
    def overruns(self) -> int:
        """Samples the sources dropped so far (at their own rate)."""
        return self._lost_before[0] + self.source.overruns

    @property
    def input_overflows(self) -> int:
        """Times so far a device lost input before its source saw it (PortAudio's flag)."""
        return self._lost_before[1] + self.source.input_overflows

    @property
    def received(self) -> int:
        """Stream samples fed so far."""
        return self.audio_start + self.filled

    @property
    def complete(self) -> bool:
        """True once `limit` samples have been fed."""
        return self.limit is not None and self.received >= self.limit

    @property
    def done(self) -> bool:
        """Every frame it will ever have was taken (the source ended, or the limit came)."""
        return (self.flushed or self.complete) and self.ready() == 0

    def room(self) -> int:
        """Samples the buffer can take now."""
        return len(self.audio) - self.filled

    def feed(self, samples: np.ndarray) -> None:
        """Append at most `room()` 16 kHz mono samples; those past `limit` are discarded."""
        if len(samples) > self.room():
            raise ValueError(f"fed {len(samples)} samples with room for {self.room()}")
        if self.limit is not None:
            samples = samples[: max(0, self.limit - self.received)]
        self.audio[self.filled:self.filled + len(samples)] = samples
        self.filled += len(samples)

    def pull(self) -> None:
        """Move what the source has (and the buffer can take) through the resampler."""
        started = time.perf_counter()
        source, resampler = self.source, self.resampler
        # The resampler may release up to `backlog` held-back samples on top of the block's own.
        room = self.room() - resampler.backlog
        if room > 0 and not source.finished:
            self.feed(resampler.feed(source.read(room * source.rate // SAMPLE_RATE)))
        if source.finished and not self.flushed and self.room() >= resampler.backlog:
            self.feed(resampler.flush())
            self.flushed = True
        self._read_ms += (time.perf_counter() - started) * 1e3

    def ready(self) -> int:
        if self.received < FRAME_SAMPLES:
            return 0
        return (self.received - FRAME_SAMPLES) // self.settings.hop_samples + 1 - self.frames

    def take(self) -> list[Frame]:
        """The ready frames, oldest first; drops the audio no later frame needs."""
        count = self.ready()
        if count == 0:
            return []
        read_ms, self._read_ms = self._read_ms / count, 0.0
        hop, taken = self.settings.hop_samples, []
        for index in range(self.frames, self.frames + count):
            offset = index * hop - self.audio_start
            taken.append(Frame(index, self.audio[offset:offset + FRAME_SAMPLES].copy(), read_ms))
        self.frames += count
        drop = self.frames * hop - self.audio_start
        self.audio[: self.filled - drop] = self.audio[drop:self.filled]
        self.audio_start += drop
        self.filled -= drop
        return taken

    def graph_for(self, index: int) -> InstanceGraph:
        """Frame `index`'s graph: the one of its hop phase."""
        return self.graphs[index % len(self.graphs)]

    def end_sample(self, index: int) -> int:
        """Stream samples at the end of frame `index`."""
        return index * self.settings.hop_samples + FRAME_SAMPLES

    def seconds_to_next_frame(self) -> float:
        return max(0, self.end_sample(self.frames) - self.received) / SAMPLE_RATE

    def close(self) -> None:
        """Close the source (once)."""
        if not self.closed:
            self.closed = True
            self.source.close()
