"""Fuzzing (issue 12): mmgat-live fed random stdin formats and bytes, files with damaged headers,
and odd sample content must end in sane records or one clear error line, never a traceback, a
NaN or a hang; and the ring buffer -> resampler -> frame assembly path, fed counter signals,
must lose and repeat no sample but the counted overruns, at any block size and rate.

mmgat-live runs in-process (main()), with the tiny seeded model, its JSONL written to a file
so that stderr holds nothing but the loading line and at most one error line."""

from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, assume, currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from live_fixtures import LOADING_LINE, check_record, one_error_line, run_main, write_clip
from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, to_mono_16k
from mmgat.model.graph import MAX_WINDOW
from mmgat.stream.pipeline import SILENCE_DBFS
from mmgat.stream.resample import MAX_AMPLITUDE, MAX_BACKLOG, MAX_RATE, MIN_RATE, StreamResampler, check_rate
from mmgat.stream.ring import RingBuffer
from mmgat.stream.sources import SoundFileSource
from mmgat.stream.settings import MAX_PHASES, StreamSettings
from mmgat.stream.stream import Stream

WINDOW = 3
HOPS = [FRAME_SAMPLES // k for k in range(1, MAX_PHASES + 1) if FRAME_SAMPLES % k == 0]  # every valid hop
MAX_LEVEL_DBFS = 20 * math.log10(MAX_AMPLITUDE)  # louder samples are clipped
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# Running mmgat-live in-process and judging what it left


def strict_json(line: str) -> dict:
    def constant(name):
        raise AssertionError(f"{name} in a JSONL record: {line[:200]}")

    return json.loads(line, parse_constant=constant)


def judge(status: int, out: str, err: str, jsonl, hop: int = FRAME_SAMPLES, table=None,
          window: int = WINDOW) -> list[dict] | str:
    """Sane records (exit 0: the list of records) or one clear error line (exit != 0: the line);
    never a traceback, a NaN or anything but the loading line besides. Records written before an
    error must be sane too."""
    assert "Traceback" not in out + err, err
    records = [strict_json(line) for line in jsonl.read_text().splitlines()] if jsonl.exists() else []
    for k, rec in enumerate(records):
        check_record(rec, window)
        assert rec["t"] == float(Decimal(k * hop + FRAME_SAMPLES) / SAMPLE_RATE)  # every hop, in order
        assert all(0.0 <= p <= 1.0 for p in rec["groups"].values())
        assert SILENCE_DBFS <= rec["level_dbfs"] <= MAX_LEVEL_DBFS + 0.01
    if table is not None and table.exists():
        rows = list(csv.DictReader(table.open()))
        assert len(rows) == len(records)
        for row in rows:
            assert all(0.0 <= float(row[c]) <= 1.0 for c in records[0]["probs"]), row
    if status == 0:
        outcome("records")
        assert records, "exit 0 without a single record"
        assert [line for line in err.splitlines() if line.strip()] == [LOADING_LINE], err
        return records
    assert status in (1, 2), status
    line = one_error_line(err)
    outcome(f"error: {' '.join(line.split()[2:5])}")
    return line


def outcome(kind: str) -> None:
    """Counted in --hypothesis-show-statistics: what the generated cases ran into."""
    if currently_in_test_context():
        event(kind)


def streamed_length(frames: int, rate: int) -> int:
    """16 kHz samples that `frames` input frames at `rate` become (soxr's output length: the
    exact length rounded half up)."""
    return (2 * frames * SAMPLE_RATE + rate) // (2 * rate)


def expected_records(samples: int, hop: int) -> int:
    return 0 if samples < FRAME_SAMPLES else (samples - FRAME_SAMPLES) // hop + 1


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """As mmgat-live runs (--threads 1): torch's threads wait on each other on a busy small machine,
    and the many small resampling calls here would take ten times longer."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fresh(*paths):
    for path in paths:
        path.unlink(missing_ok=True)
    return paths


# ---------------------------------------------------------------------------------------------
# 1. Random --stdin-format texts and random bytes on stdin

ENCODINGS = {"s16le": np.dtype("<i2"), "s32le": np.dtype("<i4"), "f32le": np.dtype("<f4")}
COMMON_RATES = [8000, 11025, 16000, 22050, 44100, 48000, 96000]
MAX_PAYLOAD = 1 << 20  # bytes


@st.composite
def stdin_cases(draw):
    """(format text, payload, expected) where expected = (rate, whole frames) when the text is a
    well-formed format at a common rate (the run must then work out exactly), else None."""
    if draw(st.booleans()):  # well-formed at a common rate: it must work out exactly
        encoding, rate = draw(st.sampled_from([*ENCODINGS, "S16LE", "F32LE"])), draw(st.sampled_from(COMMON_RATES))
        channels, shape = draw(st.integers(1, 6)), draw(st.sampled_from(["plain", "padded"]))
    else:  # anything, mostly near misses
        encoding = draw(st.sampled_from([*ENCODINGS, "u8", "s24le", "f64le", "s16be", ""]))
        rate = draw(st.one_of(st.integers(0, 10**6), st.sampled_from([999, 1000, 44101, 768000, 768001])))
        channels = draw(st.sampled_from([1, 2, 6, 0, 64, 65]))
        shape = draw(st.sampled_from(["plain", "padded", "two fields", "four fields", "any text"]))
    text = {"plain": f"{encoding}:{rate}:{channels}", "padded": f" {encoding}:{rate}:{channels}\t",
            "two fields": f"{encoding}:{rate}", "four fields": f"{encoding}:{rate}:{channels}:1",
            "any text": draw(st.text(max_size=24))}[shape]
    dtype = ENCODINGS.get(encoding.lower(), np.dtype("<i2"))
    frame_bytes = dtype.itemsize * max(channels, 1)
    seconds = draw(st.one_of(st.floats(0.0, 1.2), st.floats(1.0, 2.6), st.floats(1.0, 2.6)))
    frames = min(int(seconds * max(rate, 1)), MAX_PAYLOAD // frame_bytes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if draw(st.booleans()):  # random bytes: full-scale noise; as f32le also NaN, Inf, 3e38, denormals
        payload = rng.bytes(frames * frame_bytes)
    else:  # audio at -10 dBFS
        samples = 0.3 * rng.standard_normal(frames * max(channels, 1))
        scale = 1.0 if dtype.kind == "f" else np.iinfo(dtype).max
        payload = (np.clip(samples, -1.0, 1.0) * scale).astype(dtype).tobytes()
    payload += rng.bytes(draw(st.integers(0, frame_bytes - 1)))  # the last frame cut short
    well_formed = (shape in ("plain", "padded") and encoding.lower() in ENCODINGS and rate in COMMON_RATES
                   and 1 <= channels <= 6)
    return text, payload, (rate, frames) if well_formed else None


@FUZZ
@given(stdin_cases(), st.sampled_from([FRAME_SAMPLES, FRAME_SAMPLES // 4]))
@example(("s16le:44101:1", bytes(88202), None), FRAME_SAMPLES)  # was a 706M-tap torchaudio filter: 5.6 GB
@example(("s16le:4400:1", bytes(8800), (4400, 4400)), FRAME_SAMPLES)  # the lowest rate taken (MIN_RATE)
@example(("", bytes(32000), None), FRAME_SAMPLES)  # was taken as no --stdin-format: the default device
@example(("f32le:16000:1", np.tile(np.float32([3e38, -3e38]), 10000).tobytes(), (16000, 20000)), FRAME_SAMPLES)
@example(("f32le:22050:1", np.full(30000, np.nan, "<f4").tobytes() + b"\x01", (22050, 30000)), FRAME_SAMPLES)
def test_random_stdin_formats_and_bytes(tiny_model, workdir, case, hop):
    text, payload, expected = case
    jsonl, = fresh(workdir / "stdin.jsonl")
    args = [f"--stdin-format={text}", "--model", tiny_model, "--cpu", "--no-display", "--as-fast-as-possible",
            "--window", WINDOW, "--hop", hop / SAMPLE_RATE, "--jsonl", jsonl]
    result = judge(*run_main(args, stdin=payload), jsonl, hop)
    if expected is not None:
        rate, frames = expected
        count = expected_records(streamed_length(frames, rate), hop)
        if count:  # every whole frame sent was used, the cut-short last one dropped
            assert isinstance(result, list) and len(result) == count, result
        else:
            assert "holds" in result and "of audio" in result


@pytest.mark.parametrize("args, code, expected", [(["--stdin-format="], 2, "--stdin-format wants"),
                                                  (["--file", ""], 1, "the file name is empty")])
def test_an_empty_source_is_an_error_not_the_default_device(tiny_model, args, code, expected):
    status, _, err = run_main([*args, "--model", tiny_model, "--cpu", "--no-display"], stdin=b"")
    assert status == code and expected in one_error_line(err)


# ---------------------------------------------------------------------------------------------
# 2. Files with truncated or overwritten headers


@pytest.fixture(scope="module")
def intact_files(workdir):
    """A few valid 1.6 s files, as bytes."""
    rng = np.random.default_rng(12)
    files = {}
    for name, fmt, subtype, rate, channels in [
            ("wav", "WAV", "PCM_16", 44100, 2), ("flac", "FLAC", "PCM_16", 16000, 1),
            ("float", "WAV", "FLOAT", 22050, 1), ("aiff", "AIFF", "PCM_24", 48000, 2),
            ("ogg", "OGG", "VORBIS", 44100, 2), ("mp3", "MP3", "MPEG_LAYER_III", 44100, 1)]:
        if not soundfile.check_format(fmt, subtype):
            continue  # a libsndfile built without this codec
        buffer = io.BytesIO()
        soundfile.write(buffer, (0.3 * rng.standard_normal((int(1.6 * rate), channels))).astype(np.float32),
                        rate, format=fmt, subtype=subtype)
        files[name] = buffer.getvalue()
    return files


@st.composite
def damage(draw):
    """(file name, cut: fraction kept or None, [(offset, byte)] overwritten: header offsets < 128,
    or anywhere as a fraction of the length)."""
    name = draw(st.sampled_from(["wav", "flac", "float", "aiff", "ogg", "mp3"]))
    cut = draw(st.one_of(st.none(), st.floats(0.0, 1.0)))
    spots = st.one_of(st.integers(0, 127), st.floats(0.0, 1.0))
    writes = draw(st.lists(st.tuples(spots, st.integers(0, 255)), max_size=4))
    return name, cut, writes


@FUZZ
@given(damage())
@example(("flac", 0.5, []))  # "flac decoder lost sync": was a LibsndfileError traceback
@example(("wav", None, [(24, 0x45), (25, 0xAC)]))  # 44101 Hz: was a 5.6 GB torchaudio filter
@example(("wav", None, [(24, 1), (25, 0)]))  # 1 Hz: the resampler held back more than a stream buffers: a hang
@example(("wav", 0.9, [(22, 6)]))  # 6 channels claimed, 2 written
def test_damaged_files(tiny_model, workdir, intact_files, case):
    name, cut, writes = case
    assume(name in intact_files)  # else libsndfile here cannot write it
    data = bytearray(intact_files[name])
    if cut is not None:
        data = data[:int(cut * len(data))]
    for spot, value in writes:
        offset = spot if isinstance(spot, int) else int(spot * len(data))
        if offset < len(data):
            data[offset] = value
    clip, jsonl = fresh(workdir / f"damaged.{name}", workdir / "damaged.jsonl")
    clip.write_bytes(bytes(data))
    args = ["--file", clip, "--model", tiny_model, "--cpu", "--no-display", "--as-fast-as-possible",
            "--window", WINDOW, "--duration", 3, "--jsonl", jsonl]
    judge(*run_main(args), jsonl)


# ---------------------------------------------------------------------------------------------
# 3. Sample content: non-finite, denormal, DC, full-scale squares; 8-bit to 64-bit samples;
#    1-sample files; 8 to 96 kHz; 6 channels; files that end mid-frame

INTEGER_TYPES = [("AIFF", "PCM_S8"), ("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("WAV", "PCM_32")]
FLOAT_TYPES = [("WAV", "FLOAT"), ("WAV", "DOUBLE")]
ANY_CONTENT = ["silence", "dc", "square", "noise"]
FLOAT_CONTENT = ["nan and inf", "denormal", "huge"]  # only float files can hold these
SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}


def content(kind: str, frames: int, channels: int, rate: int, rng, double: bool) -> np.ndarray:
    shape = (frames, channels)
    if kind == "silence":
        return np.zeros(shape)
    if kind == "dc":
        return np.full(shape, rng.uniform(-1.0, 1.0))
    if kind == "square":  # full scale, the period anywhere from 2 samples to 1/4 s
        period = int(rng.integers(2, rate // 4))
        return np.where((np.arange(frames) // max(1, period // 2)) % 2, 1.0, -1.0)[:, None] * np.ones(channels)
    noise = 0.3 * rng.standard_normal(shape)
    if kind == "nan and inf":
        spots = rng.random(shape)
        noise[spots < 0.05] = np.nan
        noise[(spots >= 0.05) & (spots < 0.07)] = np.inf
        noise[(spots >= 0.07) & (spots < 0.09)] = -np.inf
    elif kind == "denormal":
        noise *= 1e-310 if double else 1e-39
    elif kind == "huge":  # finite, but summing two of them overflows float32 (doubles: even reading)
        noise = np.sign(noise) * (1e300 if double else 3e38) * (rng.random(shape) < 0.5)
    return noise


@st.composite
def sample_files(draw):
    kind = draw(st.sampled_from(ANY_CONTENT + FLOAT_CONTENT))
    fmt, subtype = draw(st.sampled_from(FLOAT_TYPES if kind in FLOAT_CONTENT else INTEGER_TYPES + FLOAT_TYPES))
    rate = draw(st.sampled_from([8000, 16000, 44100, 48000, 96000]))
    channels = draw(st.sampled_from([1, 2, 6]))
    longer = st.integers(rate, int(2.2 * rate))
    frames = draw(st.one_of(longer, longer, longer, st.sampled_from([1, rate - 1, rate])))
    cut = 0 if fmt == "FLAC" else draw(st.integers(0, 7))  # bytes off the end: the last frame cut short
    cut = min(cut, frames * channels * SAMPLE_BYTES[subtype] - 1)  # (the samples', not the header's)
    return kind, fmt, subtype, rate, channels, frames, cut, draw(st.integers(0, 2**32 - 1))


@FUZZ
@given(sample_files())
@example(("huge", "WAV", "FLOAT", 16000, 2, 20000, 0, 0))  # 3e38: was "instance contains NaN or infinity"
@example(("nan and inf", "WAV", "DOUBLE", 96000, 6, 100000, 3, 1))
@example(("silence", "AIFF", "PCM_S8", 8000, 1, 1, 0, 2))  # a 1-sample file
@example(("square", "WAV", "PCM_32", 44100, 6, 44100, 5, 3))
def test_sample_content(tiny_model, workdir, case):
    kind, fmt, subtype, rate, channels, frames, cut, seed = case
    samples = content(kind, frames, channels, rate, np.random.default_rng(seed), subtype == "DOUBLE")
    clip, jsonl, table = fresh(workdir / f"content.{fmt.lower()}", workdir / "content.jsonl", workdir / "content.csv")
    soundfile.write(clip, samples, rate, format=fmt, subtype=subtype)
    if cut:
        clip.write_bytes(clip.read_bytes()[:-cut])
    header_frames = soundfile.info(clip).frames
    readable = len(soundfile.read(clip, dtype="float32", always_2d=True)[0])
    args = ["--file", clip, "--model", tiny_model, "--cpu", "--no-display", "--as-fast-as-possible",
            "--window", WINDOW, "--jsonl", jsonl, "--csv", table]
    result = judge(*run_main(args), jsonl, table=table)
    count = expected_records(streamed_length(readable, rate), FRAME_SAMPLES)
    if header_frames < rate or count == 0:
        assert "holds" in result and "of audio" in result
        return
    assert isinstance(result, list) and len(result) == count, result
    if kind == "silence":
        assert all(rec["level_dbfs"] == SILENCE_DBFS for rec in result)


def test_the_shipped_model_marks_nothing_active_in_silence_or_dc(workdir):
    """Digital silence, a sub-audio rise (raised cosine over 1 s) and pure DC at -6 dBFS: the
    shipped model hears no instrument in any window (a random test model would be meaningless)."""
    rise = 0.25 * (1.0 - np.cos(np.linspace(0.0, np.pi, SAMPLE_RATE)))
    clip = write_clip(workdir / "silence-dc.wav", np.concatenate(
        [np.zeros(SAMPLE_RATE), rise, np.full(2 * SAMPLE_RATE, 0.5)]).astype(np.float32)[:, None])
    jsonl, = fresh(workdir / "silence-dc.jsonl")
    records = judge(*run_main(["--file", clip, "--cpu", "--no-display", "--as-fast-as-possible", "--jsonl", jsonl]),
                    jsonl, window=MAX_WINDOW)
    assert [rec["t"] for rec in records] == [1.0, 2.0, 3.0, 4.0]
    assert [rec["active"] for rec in records] == [[]] * 4, [max(r["probs"].items(), key=lambda kv: kv[1])
                                                            for r in records]
    assert records[0]["level_dbfs"] == SILENCE_DBFS and abs(records[-1]["level_dbfs"] + 6.02) < 0.01


# ---------------------------------------------------------------------------------------------
# 4. Ring buffer -> resampler -> frame assembly, with counter signals (no model)

COUNTER_SCALE = 2.0 ** -16  # counter values times this stay exact in float32 (and averaged)


def counter_block(start: int, count: int, channels: int) -> np.ndarray:
    """Sample i of the stream is i * COUNTER_SCALE on average over the channels, which differ
    symmetrically around it (so a downmix that is not the mean shows)."""
    values = np.arange(start, start + count, dtype=np.float64)[:, None]
    spread = np.arange(channels) - (channels - 1) / 2
    return ((values + spread) * COUNTER_SCALE).astype(np.float32)


class CounterDevice:
    """A device stand-in: `produce()` writes the next counter block into a RingBuffer, as the
    PortAudio callback does; the worker reads it through Stream.pull()."""

    input_overflows = 0
    description = "counter"

    def __init__(self, rate: int, channels: int, capacity: int, blocks: list[int]):
        self.rate, self.channels, self.blocks = rate, channels, blocks
        self.ring = RingBuffer(capacity, channels)
        self.produced, self.block_starts, self.reads = 0, [], []

    @property
    def overruns(self) -> int:
        return self.ring.overruns

    @property
    def producing(self) -> bool:
        return len(self.block_starts) < len(self.blocks)

    @property
    def finished(self) -> bool:
        return not self.producing and self.ring.available() == 0

    def produce(self) -> None:
        size = self.blocks[len(self.block_starts)]
        self.block_starts.append(self.produced)
        self.ring.write(counter_block(self.produced, size, self.channels))
        self.produced += size

    def read(self, max_frames: int) -> np.ndarray:
        block = self.ring.read(max_frames)
        self.reads.append(block)
        return block


def stream_all(stream: Stream, produce, schedule: list[bool], limit: int) -> list:
    """The scheduler's loop without the model: produce, pull when the schedule says (always once
    production is over), take every ready frame; until the stream is done or `limit` loops."""
    frames = []
    for loop in range(limit):
        producing = produce()
        if not producing or schedule[loop % len(schedule)]:
            stream.pull()
            frames += stream.take()
        if stream.done:
            return frames
    raise AssertionError(f"the stream was not done after {limit} loops: a hang")


@st.composite
def ring_cases(draw):
    rate = draw(st.sampled_from([8000, 16000, 44100, 48000, 96000]))
    sizes = draw(st.lists(st.integers(1, 4096), min_size=1, max_size=12))
    total = draw(st.integers(rate, int(2.5 * rate)))
    blocks, produced = [], 0
    while produced < total:  # the drawn sizes, then (past 100 blocks) a device's larger ones
        size = sizes[len(blocks) % len(sizes)] if len(blocks) < 100 else max(sizes[len(blocks) % len(sizes)], 4096)
        blocks.append(min(size, total - produced))
        produced += blocks[-1]
    capacity = draw(st.one_of(st.integers(rate, 3 * rate), st.integers(1, 4096)))  # from never full to always
    schedule = draw(st.lists(st.booleans(), min_size=1, max_size=8))  # does the worker run this block?
    return rate, draw(st.integers(1, 3)), capacity, blocks, schedule, draw(st.sampled_from(HOPS))


@settings(max_examples=30, deadline=None)
@given(ring_cases())
@example((16000, 2, 16000, [160] * 300, [True], 800))  # a device's 10 ms blocks, the smallest hop
@example((44100, 1, 300, [441] * 250, [False, False, True], FRAME_SAMPLES))  # a ring that overruns
def test_ring_resampler_and_frames_lose_and_repeat_nothing_but_counted_overruns(case):
    rate, channels, capacity, blocks, schedule, hop = case
    device = CounterDevice(rate, channels, capacity, blocks)
    stream = Stream(device, StreamSettings(window=1, hop_s=hop / SAMPLE_RATE))

    def produce():
        if device.producing:
            device.produce()
        return device.producing

    frames = stream_all(stream, produce, schedule, limit=len(blocks) + 10_000)
    outcome(f"{'no' if not frames else 'some'} frames, {'some' if device.overruns else 'no'} overruns")

    kept = np.concatenate(device.reads)
    counter = np.round(kept.mean(axis=1, dtype=np.float64) / COUNTER_SCALE).astype(np.int64)
    # Every sample produced was read once, in order, or dropped by the ring and counted; and the
    # ring drops only the newest samples of the block that did not fit (each block's kept part is
    # a prefix of it).
    assert len(kept) + device.overruns == sum(blocks)
    assert np.all(np.diff(counter) > 0)
    block = np.searchsorted(device.block_starts, counter, side="right") - 1
    first_of_block = np.searchsorted(block, block, side="left")
    np.testing.assert_array_equal(counter - np.asarray(device.block_starts)[block],
                                  np.arange(len(counter)) - first_of_block)
    # The 16 kHz stream is whole-signal resampling of what was kept; frame k is exactly its
    # samples [k * hop, k * hop + FRAME_SAMPLES).
    whole = to_mono_16k(kept, rate)
    assert stream.received == len(whole) == streamed_length(len(kept), rate)
    assert [frame.index for frame in frames] == list(range(expected_records(len(whole), hop)))
    for frame in frames:
        expected = whole[frame.index * hop:frame.index * hop + FRAME_SAMPLES]
        if rate == SAMPLE_RATE:
            np.testing.assert_array_equal(frame.samples, expected)  # the counter itself, bit for bit
        else:
            np.testing.assert_allclose(frame.samples, expected, atol=1e-4)


@pytest.mark.parametrize("rate", [MIN_RATE, 5000, 8000, 11025, 44100, 47952, 96000, 265168, MAX_RATE])
def test_odd_rates_stream_from_files_without_a_hang_at_the_smallest_hop(rate):
    """The accepted rates with the largest held-back output (MIN_RATE: up to MAX_BACKLOG) or the
    largest ratios stream to the end at hop 50 ms, where a stream buffers least."""
    frames = int(2.3 * rate) + 1
    buffer = io.BytesIO()
    soundfile.write(buffer, counter_block(0, frames, 2), rate, format="WAV", subtype="FLOAT")
    buffer.seek(0)
    source = SoundFileSource(soundfile.SoundFile(buffer), "counter", paced=False)
    hop = min(HOPS)
    stream = Stream(source, StreamSettings(window=1, hop_s=hop / SAMPLE_RATE))
    assert stream.resampler.backlog <= MAX_BACKLOG
    source.start()
    taken = stream_all(stream, lambda: False, [True], limit=10_000)
    assert stream.received == streamed_length(frames, rate)
    assert [frame.index for frame in taken] == list(range(expected_records(streamed_length(frames, rate), hop)))


@pytest.mark.parametrize("rate", [0, 1, 7, 30, MIN_RATE - 1, MAX_RATE + 1, 2**31 - 1])
def test_rates_the_resampler_cannot_stream_are_refused_in_one_line(rate):
    """Rates that would hold back more than a stream buffers (a hang), or beyond what audio
    interfaces offer, are refused before anything is allocated."""
    with pytest.raises(AudioError) as refused:
        StreamResampler(rate, 1)
    assert len(str(refused.value).splitlines()) == 1 and f"{rate} Hz" in str(refused.value)
    with pytest.raises(AudioError):
        check_rate(rate)


@pytest.mark.parametrize("hop", [min(HOPS), 1000, 1600, FRAME_SAMPLES])
def test_hop_timestamps_are_exact_over_a_hundred_thousand_hops(hop):
    """Fed counter chunks as large as the state takes, frame k holds samples [k * hop, k * hop +
    FRAME_SAMPLES) (10^5 frames at the smallest hop), and the time of frame k < 10^5, as the JSONL
    prints it, is the exact decimal (k * hop + FRAME_SAMPLES) / 16000 s."""
    hops = 100_000 if hop == min(HOPS) else 2_000  # the smallest hop takes the most hops per frame
    stream, fed, index, wrap = Stream.fed(StreamSettings(1, hop / SAMPLE_RATE)), 0, 0, 2**20  # counter mod 2**20: exact
    while index < hops:
        room = stream.room()
        stream.feed((np.arange(fed, fed + room) % wrap).astype(np.float32))
        fed += room
        for frame in stream.take():
            k, samples = frame.index, frame.samples
            assert k == index
            assert samples[0] == k * hop % wrap and samples[-1] == (k * hop + FRAME_SAMPLES - 1) % wrap
            index += 1
    for k in range(100_000):  # the record's "t", as printed, against the exact decimal
        assert Decimal(json.dumps(round(stream.end_sample(k) / SAMPLE_RATE, 4))) == Decimal(k * hop + FRAME_SAMPLES) / SAMPLE_RATE
