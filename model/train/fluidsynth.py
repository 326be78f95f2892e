"""libfluidsynth through ctypes: SoundFonts loaded once, MIDI rendered offline.

Only what the synthesizer needs: load a SoundFont, list its presets, render a mido file with a
(bank, program) per channel, note on/off, pitch bend and controllers (sustain pedal,
expression). FluidSynth's reverb and chorus are off (rooms come from the augmentation), its log
is silenced (it would garble the progress bar).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from pathlib import Path

import numpy as np

RENDER_RATE = 48_000  # FluidSynth aliases badly when it renders at 16 kHz; resampled afterwards

Patch = tuple[int, int]  # (bank, program), as the SoundFont numbers them

_P, _I = ctypes.c_void_p, ctypes.c_int
_SIGNATURES = {
    "new_fluid_settings": (_P, []),
    "delete_fluid_settings": (None, [_P]),
    "fluid_settings_setnum": (_I, [_P, ctypes.c_char_p, ctypes.c_double]),
    "fluid_settings_setint": (_I, [_P, ctypes.c_char_p, _I]),
    "new_fluid_synth": (_P, [_P]),
    "delete_fluid_synth": (None, [_P]),
    "fluid_synth_sfload": (_I, [_P, ctypes.c_char_p, _I]),
    "fluid_synth_get_sfont_by_id": (_P, [_P, _I]),
    "fluid_sfont_iteration_start": (None, [_P]),
    "fluid_sfont_iteration_next": (_P, [_P]),
    "fluid_preset_get_banknum": (_I, [_P]),
    "fluid_preset_get_num": (_I, [_P]),
    "fluid_synth_program_select": (_I, [_P, _I, _I, _I, _I]),
    "fluid_synth_noteon": (_I, [_P, _I, _I, _I]),
    "fluid_synth_noteoff": (_I, [_P, _I, _I]),
    "fluid_synth_pitch_bend": (_I, [_P, _I, _I]),
    "fluid_synth_cc": (_I, [_P, _I, _I, _I]),
    "fluid_synth_add_sfont": (_I, [_P, _P]),
    "fluid_synth_remove_sfont": (_I, [_P, _P]),
    "fluid_synth_write_float": (_I, [_P, _I, _P, _I, _I, _P, _I, _I]),
    "fluid_set_log_function": (_P, [_I, _P, _P]),
}


@functools.cache
def libfluidsynth() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("fluidsynth") or "libfluidsynth.so.3")
    except OSError:
        raise OSError("libfluidsynth is not installed (apt-get install fluidsynth)") from None
    for function, (restype, argtypes) in _SIGNATURES.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    for level in range(5):  # FluidSynth's own messages would garble the progress bar
        lib.fluid_set_log_function(level, None, None)
    return lib


class FluidSynth:
    """A SoundFont loaded once into libfluidsynth, rendering mido files offline at RENDER_RATE.

    Each render runs on a synthesizer of its own that shares the loaded SoundFont (about a
    millisecond to make): a reused synthesizer carries voice state from render to render and
    would make the output depend on what it rendered before."""

    def __init__(self, path: Path):
        self.lib = libfluidsynth()
        self.path = Path(path)
        self.settings = self.lib.new_fluid_settings()
        for name, value in ((b"synth.reverb.active", 0), (b"synth.chorus.active", 0),
                            (b"synth.lock-memory", 0)):
            self.lib.fluid_settings_setint(self.settings, name, value)
        self.lib.fluid_settings_setnum(self.settings, b"synth.sample-rate", float(RENDER_RATE))
        self.loader = self.lib.new_fluid_synth(self.settings)  # owns the SoundFont
        sfont_id = self.lib.fluid_synth_sfload(self.loader, str(self.path).encode(), 1)
        if sfont_id < 0:
            self.close()
            raise ValueError(f"{path} is not a SoundFont FluidSynth can load")
        self.sfont = self.lib.fluid_synth_get_sfont_by_id(self.loader, sfont_id)
        self.presets = self._presets()

    def _presets(self) -> frozenset[Patch]:
        self.lib.fluid_sfont_iteration_start(self.sfont)
        found = set()
        while preset := self.lib.fluid_sfont_iteration_next(self.sfont):
            found.add((self.lib.fluid_preset_get_banknum(preset), self.lib.fluid_preset_get_num(preset)))
        return frozenset(found)

    def render(self, midi, programs: dict[int, Patch], n_samples: int) -> np.ndarray:
        """Mono float32 (n_samples,) at RENDER_RATE of the mido file, channel -> (bank, program)."""
        synth = self.lib.new_fluid_synth(self.settings)
        try:
            sfont_id = self.lib.fluid_synth_add_sfont(synth, self.sfont)
            for channel, (bank, program) in programs.items():
                if self.lib.fluid_synth_program_select(synth, channel, sfont_id, bank, program):
                    raise ValueError(f"{self.path.name} has no preset {bank}:{program}")
            return self._play(synth, midi, n_samples)
        finally:
            self.lib.fluid_synth_remove_sfont(synth, self.sfont)
            self.lib.delete_fluid_synth(synth)

    def _play(self, synth, midi, n_samples: int) -> np.ndarray:
        left, right = np.zeros(n_samples, np.float32), np.zeros(n_samples, np.float32)
        position, seconds = 0, 0.0
        for message in midi:  # mido gives delta times in seconds
            seconds += message.time
            target = min(int(round(seconds * RENDER_RATE)), n_samples)
            self._write(synth, left, right, position, target)
            position = target
            self._send(synth, message)
        self._write(synth, left, right, position, n_samples)
        return (left + right) * 0.5

    def _write(self, synth, left, right, start, stop):
        if stop > start:
            self.lib.fluid_synth_write_float(synth, stop - start, left.ctypes.data, start, 1,
                                             right.ctypes.data, start, 1)

    def _send(self, synth, message):
        if message.type == "note_on" and message.velocity > 0:
            self.lib.fluid_synth_noteon(synth, message.channel, message.note, message.velocity)
        elif message.type in ("note_on", "note_off"):
            self.lib.fluid_synth_noteoff(synth, message.channel, message.note)
        elif message.type == "pitchwheel":
            self.lib.fluid_synth_pitch_bend(synth, message.channel, message.pitch + 8192)
        elif message.type == "control_change":
            self.lib.fluid_synth_cc(synth, message.channel, message.control, message.value)

    def close(self):
        self.lib.delete_fluid_synth(self.loader)
        self.lib.delete_fluid_settings(self.settings)



def check_soundfont(path: Path) -> None:
    """A clear error now rather than in a worker (and before libinstpatch complains on stderr)."""
    with open(path, "rb") as file:
        header = file.read(12)
    if header[:4] != b"RIFF" or header[8:12] not in (b"sfbk", b"DLS "):
        raise ValueError(f"{path} is not a SoundFont (SF2/SF3/DLS)")
    FluidSynth(path).close()
