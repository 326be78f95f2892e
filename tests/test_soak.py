"""A short soak of the mmgat-live CLI (the long one: benchmarks/soak.py): ten minutes of audio
through `--stdin-format s16le:16000:1 --as-fast-as-possible` (the file-like source and the full
pipeline; ~12 s on a 2-core CPU): every record on the hop grid, the exact count, no overruns,
and RSS after a 2-minute warm-up growing less than RSS_GROWTH_MB (with glibc's mmap threshold
fixed, see MALLOC_ENV).

The CPU-stress run (a hog on both cores during a real-time run) is benchmarks/cpu_stress.py: how
long the scheduler holds the stream back varies too much for a timed test.
"""

from __future__ import annotations

import os
import subprocess
import threading

import numpy as np
from live_fixtures import LIVE, check_record
from virtual_mic import Watch
from mmgat.model.audio import SAMPLE_RATE

SOAK_S = 600  # stream seconds through the accelerated run
WARMUP_S = 120  # RSS is baselined once this much stream time has been scored
WINDOW = 3
# The child runs with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_): by default it adapts,
# and whether the freed frontend temporaries (~30 MB a hop) stay in the heap or go back to the OS
# then moves RSS by up to 30 MB between runs and within one, leak or not. Fixed, every large
# temporary is unmapped when freed and the measure below read 0.6 MB without a leak (< 1 MB in
# three 20-minute runs), and, with a leak injected into every update, 2.3 MB at 4 KB per hop,
# 4.3 MB at 10 KB and 24.5 MB at 64 KB (a frame of audio). 3 MB: catches 10 KB a hop, with margin
# both ways.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
RSS_GROWTH_MB = 3.0


def varied_pcm(seconds: int, seed: int = 0):
    """s16le chunks of a minute: tones that change every 10 s under a wandering gain, plus noise."""
    rng = np.random.default_rng(seed)
    for start in range(0, seconds, 60):
        t = np.arange(start * SAMPLE_RATE, min(start + 60, seconds) * SAMPLE_RATE) / SAMPLE_RATE
        freq = 220.0 * 2 ** (np.floor(t / 10) % 12 / 12)
        gain = 0.3 + 0.25 * np.sin(2 * np.pi * t / 97)
        audio = gain * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
        yield (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def test_soak_accelerated_stdin(tiny_model, tmp_path):
    jsonl = tmp_path / "soak.jsonl"
    process = subprocess.Popen(
        [*LIVE, "--stdin-format", f"s16le:{SAMPLE_RATE}:1", "--as-fast-as-possible", "--no-display", "--cpu",
         "--model", str(tiny_model), "--window", str(WINDOW), "--hop", "1", "--jsonl", str(jsonl)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **MALLOC_ENV})

    def feed():
        try:
            for chunk in varied_pcm(SOAK_S):
                process.stdin.write(chunk)
        finally:
            process.stdin.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    stderr = []
    reader = threading.Thread(target=lambda: stderr.append(process.stderr.read()), daemon=True)
    reader.start()
    watch = Watch(process, jsonl)
    watch.follow(every_s=0.02)
    feeder.join(30)
    reader.join(30)
    assert process.returncode == 0, stderr[0].decode()

    records = watch.records
    assert [r["t"] for r in records] == [1.0 + k for k in range(SOAK_S)]  # exact, and every one
    for rec in records[::60]:
        check_record(rec, window=WINDOW)
    assert records[-1]["overruns"] == 0 and records[-1]["input_overflows"] == 0
    # RSS while the stream ran, from the end of warm-up to the last sample before the last record
    # (the teardown frees memory, which would hide growth): the floor and the peak of the last
    # fifth of the samples against the first fifth (single samples fall anywhere within a hop).
    streaming = [s["rss_mb"] for s in watch.samples if WARMUP_S <= s["records"] < len(records)]
    assert len(streaming) >= 50, f"too few RSS samples after warm-up: {watch.samples}"
    first, last = streaming[:len(streaming) // 5], streaming[-(len(streaming) // 5):]
    growth = max(min(last) - min(first), max(last) - max(first))
    assert growth < RSS_GROWTH_MB, f"RSS grew {growth:.1f} MB after warm-up: {streaming}"
