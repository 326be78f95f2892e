"""Audio sources: an input device (sounddevice), an audio file, raw PCM on stdin, or an array.

Every source implements `Source`: it hands out native-rate (frames, channels) float32 blocks
through `read(max_frames)` and says when it has `finished`; its Stream (stream.py) resamples
them. A device's callback only copies into a ring buffer, which counts what it has to drop;
files, stdin and arrays are pulled on demand, paced to real time unless asked to go as fast as
possible. sounddevice is imported only by the device functions, so other runs never touch
PortAudio.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import Protocol

import numpy as np
import soundfile

from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, open_sound
from mmgat.stream.resample import check_rate
from mmgat.stream.ring import RingBuffer

RING_SECONDS = 4.0  # device audio the ring holds between the callback and the scheduler's loop
# A started device silent this long is gone. Blocks come every few ms, but a busy CPU can hold
# the callback back for over a second (measured: benchmarks/cpu_stress.py); past what the ring
# holds, the audio would be lost anyway.
STALL_SECONDS = RING_SECONDS
CLOSE_TIMEOUT_S = 2.0  # closing a device that went away may hang in PortAudio: give up then
STDIN_SUBTYPES = {"s16le": "PCM_16", "s32le": "PCM_32", "f32le": "FLOAT"}
STDIN_FORMAT = re.compile(r"(?P<encoding>[a-z0-9]+):(?P<rate>\d+):(?P<channels>\d+)")
NO_INPUT_DEVICES = ("no input devices: PortAudio sees no microphone here; plug one in, or read audio "
                    "with --file, --stdin-format or --demo")


class SourceError(ValueError):
    """An input the user named that cannot be opened (no such device, no inputs, bad format)."""


class DeviceLost(SourceError):
    """A device that stopped delivering audio mid-run (unplugged, its audio server gone)."""


class Source(Protocol):
    """What a Stream reads its audio from."""

    description: str  # for messages and the display: "file x.flac", "device 2 'USB Mic'"
    rate: int  # samples per second per channel, as read
    channels: int
    finished: bool  # True once read() has returned the last sample
    consumed: int  # frames read() has returned so far
    overruns: int  # frames dropped so far because the reader fell behind (a device's ring)
    input_overflows: int  # times so far the device lost input before the source saw it

    def start(self) -> None:
        """Begin delivering (a device starts recording; a paced file starts its clock)."""

    def read(self, max_frames: int) -> np.ndarray:
        """Up to max_frames (frames, channels) float32 frames, maybe none yet."""

    def close(self) -> None:
        """Release the device or file; the source is not read again."""


def too_short(what: str, frames: int, rate: int) -> AudioError:
    return AudioError(f"{what} holds {frames / rate:.2f} s of audio; at least "
                      f"{FRAME_SAMPLES / SAMPLE_RATE:.2f} s is needed")


# ---------------------------------------------------------------------------------------------
# Input devices


def list_input_devices() -> list[dict]:
    """Every device with inputs: index, name, host API, channels, default rate, is_default."""
    import sounddevice as sd

    default = _default_input_index()
    apis = sd.query_hostapis()
    return [{"index": index, "name": info["name"], "hostapi": apis[info["hostapi"]]["name"],
             "channels": info["max_input_channels"], "rate": info["default_samplerate"],
             "default": index == default}
            for index, info in enumerate(sd.query_devices()) if info["max_input_channels"] > 0]


def _default_input_index() -> int | None:
    import sounddevice as sd

    try:
        return int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError, KeyError):
        return None


def resolve_input_device(spec: str | None) -> int:
    """--device by index or by (case-insensitive) name substring; None = the default input."""
    import sounddevice as sd

    devices = sd.query_devices()
    if spec is None:
        index = _default_input_index()
        if index is None and not any(info["max_input_channels"] > 0 for info in devices):
            raise SourceError(NO_INPUT_DEVICES)
        if index is None:
            raise SourceError("no default input device; pick one with --device (see --list-devices)")
    elif spec.strip().isdigit():
        index = int(spec)
        if index >= len(devices):
            raise SourceError(f"no device {index}; see --list-devices")
    else:
        matches = [i for i, info in enumerate(devices) if spec.lower() in info["name"].lower()]
        if not matches:
            raise SourceError(f"no device matches {spec!r}; see --list-devices")
        inputs = [i for i in matches if devices[i]["max_input_channels"] > 0]
        exact = [i for i in inputs if devices[i]["name"].lower() == spec.lower()]
        if len(inputs) > 1 and not exact:
            names = ", ".join(f"{i} {devices[i]['name']!r}" for i in inputs)
            raise SourceError(f"{spec!r} matches several input devices ({names}); give its index")
        index = (exact or inputs or matches)[0]
    if devices[index]["max_input_channels"] < 1:
        raise SourceError(f"device {index} ({devices[index]['name']}) has no inputs")
    return index


def input_settings(index: int) -> tuple[int, int]:
    """(rate, channels) to open the device with: 16 kHz mono when it can, else its native rate
    (mono, then all its channels); its Stream resamples and downmixes."""
    import sounddevice as sd

    info = sd.query_devices(index)
    native_rate, native_channels = int(info["default_samplerate"]), int(info["max_input_channels"])
    reason = ""
    for rate, channels in dict.fromkeys(((SAMPLE_RATE, 1), (native_rate, 1), (native_rate, native_channels))):
        try:
            sd.check_input_settings(index, channels=channels, dtype="float32", samplerate=rate)
            return rate, channels
        except (sd.PortAudioError, ValueError) as error:
            reason = str(error)
    raise SourceError(f"device {index} ({info['name']}) cannot record at {SAMPLE_RATE} Hz mono nor at "
                      f"its native {native_rate} Hz x {native_channels}: {reason}")


def refresh_devices() -> None:
    """Re-read PortAudio's device list (it is read once, when PortAudio starts), so a device
    plugged in again is found; call it with no stream open."""
    import sounddevice as sd

    sd._terminate()
    sd._initialize()


class DeviceSource:
    """A sounddevice input stream whose callback only copies into a RingBuffer."""

    def __init__(self, spec: str | None):
        import sounddevice as sd

        self.index = resolve_input_device(spec)
        self.rate, self.channels = input_settings(self.index)
        name = f"device {self.index} {sd.query_devices(self.index)['name']!r}"
        self.ring = RingBuffer(int(RING_SECONDS * self.rate), self.channels)
        try:
            self._stream = sd.InputStream(device=self.index, samplerate=self.rate, channels=self.channels,
                                          dtype="float32", latency="low", callback=self._callback)
        except sd.PortAudioError as error:
            raise SourceError(f"cannot open {name}: {error}") from None
        self.description = f"{name} ({self._stream.latency * 1e3:.0f} ms input latency)"
        self._last_block = float("inf")  # monotonic time of the last block; set by start()
        self.input_overflows = 0  # blocks PortAudio reports lost before they reached the callback
        self.consumed = 0

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.input_overflows += 1
        self.ring.write(indata)
        self._last_block = time.monotonic()

    @property
    def overruns(self) -> int:
        return self.ring.overruns

    finished = False  # a device never ends; when it goes away, read() raises DeviceLost

    def start(self) -> None:
        import sounddevice as sd

        try:
            self._stream.start()
        except sd.PortAudioError as error:
            raise DeviceLost(f"cannot start {self.description}: {error}") from None
        self._last_block = time.monotonic()

    def read(self, max_frames: int) -> np.ndarray:
        """What the ring holds; once it is empty, DeviceLost if PortAudio stopped the stream
        or no block came for STALL_SECONDS (so every sample that arrived is delivered first)."""
        block = self.ring.read(max_frames)
        self.consumed += len(block)
        if len(block) or max_frames == 0:
            return block
        if not self._stream.active:
            raise DeviceLost(f"{self.description} stopped (unplugged, or its audio server went away)")
        if time.monotonic() - self._last_block > STALL_SECONDS:
            raise DeviceLost(f"{self.description} delivered no audio for {STALL_SECONDS:g} s")
        return block

    def close(self) -> None:
        """Abort and close the stream, waiting at most CLOSE_TIMEOUT_S: PortAudio can hang for good
        aborting a stream whose audio server died. A stream left hanging also takes sounddevice's
        exit handler (PortAudio's shutdown) off, which would hang the process's exit the same way."""
        import atexit

        import sounddevice as sd

        # abort, not stop: stop waits for pending buffers, which a stalled device never delivers.
        closer = threading.Thread(target=lambda: (self._stream.abort(), self._stream.close()),
                                  daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            atexit.unregister(sd._exit_handler)


# ---------------------------------------------------------------------------------------------
# Files and stdin


class PulledSource:
    """A source read on demand (a file, a pipe, an array), paced to real time unless `paced` is
    False; subclasses say how to read a block (`_read_block`)."""

    overruns = input_overflows = 0  # nothing is ever dropped: the reader pulls only what it can take

    def __init__(self, rate: int, channels: int, description: str, paced: bool):
        self.rate, self.channels, self.description, self.paced = rate, channels, description, paced
        self.consumed = 0  # frames handed out
        self.finished = False
        self.started_at: float | None = None  # perf_counter() at start: frame f is due at + f / rate

    def start(self) -> None:
        self.started_at = time.perf_counter()

    def read(self, max_frames: int) -> np.ndarray:
        if self.paced:
            due = int((time.perf_counter() - self.started_at) * self.rate) - self.consumed
            max_frames = min(max_frames, due)
        if self.finished or max_frames <= 0:
            return np.zeros((0, self.channels), np.float32)
        block = self._read_block(max_frames)
        self.consumed += len(block)
        self.finished = len(block) < max_frames
        return block

    def _read_block(self, frames: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SoundFileSource(PulledSource):
    """A file or a pipe read through libsndfile."""

    def __init__(self, sound: soundfile.SoundFile, description: str, paced: bool):
        try:  # a rate the resampler cannot take fails here, before the model loads
            check_rate(sound.samplerate, description)
        except AudioError:
            sound.close()
            raise
        super().__init__(sound.samplerate, sound.channels, description, paced)
        self._sound = sound

    def _read_block(self, frames: int) -> np.ndarray:
        try:
            return self._sound.read(frames, dtype="float32", always_2d=True)
        except RuntimeError as error:  # libsndfile: a corrupt block (a truncated FLAC: "lost sync")
            reason = str(error).strip() or type(error).__name__
            raise AudioError(f"cannot decode {self.description}: {reason}") from None

    def close(self) -> None:
        self._sound.close()


class ArraySource(PulledSource):
    """Audio already in memory: (frames,) or (frames, channels) float32 at `rate` (a program
    using the runtime directly, the benchmarks, the tests)."""

    def __init__(self, samples: np.ndarray, rate: int = SAMPLE_RATE, paced: bool = False,
                 description: str = "array"):
        samples = np.asarray(samples, np.float32)
        self._samples = samples[:, None] if samples.ndim == 1 else samples
        super().__init__(check_rate(rate, description), self._samples.shape[1], description, paced)

    def _read_block(self, frames: int) -> np.ndarray:
        return self._samples[self.consumed:self.consumed + frames]


def open_file(path, paced: bool = True) -> SoundFileSource:
    """Anything libsndfile reads; AudioError when missing, unreadable or shorter than one frame."""
    sound = open_sound(path)
    if sound.frames * SAMPLE_RATE < FRAME_SAMPLES * sound.samplerate:
        sound.close()
        raise too_short(str(path), sound.frames, sound.samplerate)
    return SoundFileSource(sound, f"file {path}", paced)


def parse_stdin_format(text: str) -> tuple[str, int, int]:
    """'s16le:RATE:CHANNELS' -> (libsndfile subtype, rate, channels)."""
    match = STDIN_FORMAT.fullmatch(text.strip().lower())
    if (not match or match["encoding"] not in STDIN_SUBTYPES or not 1000 <= int(match["rate"]) <= 768_000
            or not 1 <= int(match["channels"]) <= 64):
        raise SourceError(f"--stdin-format wants ENCODING:RATE:CHANNELS with ENCODING one of "
                          f"{', '.join(STDIN_SUBTYPES)} (e.g. s16le:16000:1), got {text!r}")
    return STDIN_SUBTYPES[match["encoding"]], int(match["rate"]), int(match["channels"])


def open_stdin(text: str, paced: bool = True) -> SoundFileSource:
    subtype, rate, channels = parse_stdin_format(text)
    if sys.stdin is None or sys.stdin.isatty():
        raise SourceError("--stdin-format reads raw PCM piped into stdin, but stdin is a terminal")
    sound = soundfile.SoundFile(sys.stdin.fileno(), mode="r", format="RAW", subtype=subtype,
                                samplerate=rate, channels=channels, endian="LITTLE", closefd=False)
    return SoundFileSource(sound, f"stdin {text.strip().lower()}", paced)
