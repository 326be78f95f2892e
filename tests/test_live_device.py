"""The real PortAudio path: sounddevice -> PortAudio -> ALSA -> PulseAudio -> a virtual microphone."""

import subprocess
import sys

import numpy as np
import pytest

from live_fixtures import check_record, parse_records, run_live, tone, virtual_mic  # noqa: F401
from mmgat.model.audio import SAMPLE_RATE

TONE_DBFS = 20 * np.log10(0.5 / np.sqrt(2))  # a sine of amplitude 0.5


@pytest.fixture(scope="module")
def mic(virtual_mic):
    virtual_mic.play(tone(1.0, SAMPLE_RATE, 1, freq=440.0, amplitude=0.5)[:, 0])
    return virtual_mic


def test_list_devices_shows_the_virtual_inputs(mic):
    done = run_live(["--list-devices"], env=mic.env, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert "pulse" in done.stdout.decode() and "channels" in done.stdout.decode()


def test_device_stream_records(mic, tiny_model):
    done = run_live(["--device", "pulse", "--model", tiny_model, "--cpu", "--jsonl", "-", "--no-display",
                     "--duration", "3", "--hop", "0.5"], env=mic.env, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    records = parse_records(done.stdout)
    assert [r["t"] for r in records] == [1.0, 1.5, 2.0, 2.5, 3.0]  # --duration 3 at hop 0.5
    for rec in records:
        check_record(rec, window=10)
        assert abs(rec["level_dbfs"] - TONE_DBFS) < 1.0  # the tone arrived, not silence
    assert "16000 Hz x 1" in done.stderr.decode()  # opened at 16 kHz mono: no resampling needed


def test_a_device_refusing_16k_mono_is_opened_natively_and_resampled(mic, tiny_model):
    """PulseAudio accepts any rate, so a fresh process makes PortAudio refuse 16 kHz mono."""
    refuse_16k = (
        "import sys, sounddevice as sd\n"
        "check = sd.check_input_settings\n"
        "def fussy(device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):\n"
        "    if samplerate == 16000:\n"
        "        raise sd.PortAudioError('Invalid sample rate')\n"
        "    return check(device, channels, dtype, extra_settings, samplerate)\n"
        "sd.check_input_settings = fussy\n"
        "from mmgat.stream.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", refuse_16k, "--device", "pulse", "--model", str(tiny_model),
                           "--cpu", "--jsonl", "-", "--no-display", "--duration", "2"],
                          env=mic.env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    stderr = done.stderr.decode()
    assert "Hz x 1 -> 16 kHz mono" in stderr and "16000 Hz x 1" not in stderr
    records = parse_records(done.stdout)
    assert [r["t"] for r in records] == [1.0, 2.0]
    for rec in records:
        check_record(rec, window=10)
        assert abs(rec["level_dbfs"] - TONE_DBFS) < 1.0  # 16 k -> native (PulseAudio) -> 16 k (ours)
