"""The real PortAudio path: sounddevice -> PortAudio -> ALSA -> PulseAudio -> a virtual microphone."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from live_fixtures import (LIVE, VirtualMic, check_record, one_error_line, parse_records, run_live, tone,  # noqa: F401
                           virtual_mic)
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


def wait_for_lines(path, count: int, process, timeout: float = 90) -> list[dict]:
    """The JSONL records once `path` holds at least `count` lines (the run must still be going)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1].decode()
        records = parse_records(path.read_bytes()) if path.is_file() else []
        if len(records) >= count:
            return records
        time.sleep(0.2)
    raise AssertionError(f"fewer than {count} records in {timeout} s")


@pytest.fixture
def own_mic(tmp_path):
    """A virtual microphone of this test's own, which the test may take down."""
    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed")
    (tmp_path / "pulse").mkdir()
    mic = VirtualMic(tmp_path / "pulse")
    mic.start()
    mic.play(tone(1.0)[:, 0])
    yield mic
    mic.stop()


def start_live(mic, model, jsonl, *extra) -> subprocess.Popen:
    return subprocess.Popen([*LIVE, "--device", "pulse", "--model", str(model), "--cpu", "--no-display",
                             "--jsonl", str(jsonl), *extra], env=mic.env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_a_device_that_goes_away_is_reported_in_the_jsonl_and_exits_1(own_mic, tiny_model, tmp_path):
    jsonl = tmp_path / "out.jsonl"
    live = start_live(own_mic, tiny_model, jsonl)
    wait_for_lines(jsonl, 2, live)
    os.kill(own_mic.pid, signal.SIGKILL)  # the audio server dies mid-run
    _, stderr = live.communicate(timeout=30)
    assert live.returncode == 1
    assert "stopped" in one_error_line(stderr.decode())
    records = parse_records(jsonl.read_bytes())
    assert len(records) >= 3 and "error" in records[-1] and records[-1]["t"] >= records[-2]["t"]
    for rec in records[:-1]:
        check_record(rec, window=10)


def test_reconnect_resumes_when_the_device_comes_back(own_mic, tiny_model, tmp_path):
    jsonl = tmp_path / "out.jsonl"
    live = start_live(own_mic, tiny_model, jsonl, "--reconnect")
    before = len(wait_for_lines(jsonl, 2, live))
    os.kill(own_mic.pid, signal.SIGKILL)
    own_mic.stop()  # its writer thread
    own_mic.fifo.unlink()  # a killed server leaves its FIFO behind
    time.sleep(3)  # a few reconnect attempts fail while the server is down
    back = VirtualMic(own_mic.runtime)
    back.start()
    back.play(tone(1.0)[:, 0])
    try:
        records = wait_for_lines(jsonl, before + 4, live)
    finally:
        live.send_signal(signal.SIGINT)
        display, stderr = live.communicate(timeout=30)
        back.stop()
    assert live.returncode == 130, stderr.decode()  # stopped by Ctrl-C
    assert "Traceback" not in stderr.decode()
    assert "reconnecting" in display.decode() and "reconnected" in display.decode()
    errors = [i for i, rec in enumerate(records) if "error" in rec]
    assert len(errors) == 1 and errors[0] < len(records) - 2  # records go on after the fault
    for rec in records[errors[0] + 1:]:
        check_record(rec, window=10)
