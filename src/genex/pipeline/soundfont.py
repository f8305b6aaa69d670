"""Offline rendering with FluidSynth and the General MIDI soundfonts Debian ships.

One :class:`SoundfontSynth` loads every soundfont it needs once (loading takes seconds,
rendering a note takes milliseconds) and renders single notes or whole MIDI
performances to mono float32 arrays, deterministically, with reverb and chorus off so
that notes do not bleed into one another.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

# name -> (Debian package, candidate files). GENEX_SOUNDFONT_DIRS adds search folders.
SOUNDFONTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "FluidR3_GM": ("fluid-soundfont-gm", ("sf2/FluidR3_GM.sf2", "sf3/FluidR3_GM.sf3")),
    "TimGM6mb": ("timgm6mb-soundfont", ("sf2/TimGM6mb.sf2",)),
    "MuseScore_General": (
        "musescore-general-soundfont",
        ("sf3/MuseScore_General.sf3", "sf2/MuseScore_General.sf2"),
    ),
}
_DEFAULT_DIRS = ("/usr/share/sounds", "/usr/local/share/sounds")
_BLOCK = 64  # FluidSynth's internal block size in frames


def _fluidsynth_write_float():
    import fluidsynth

    fn = fluidsynth._fl.fluid_synth_write_float
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    return fn


_write_float = None


class SoundfontNotFound(FileNotFoundError):
    pass


def find_soundfont(name: str) -> Path:
    """Path of a known soundfont, or an error naming the Debian package to install."""
    if name not in SOUNDFONTS:
        raise KeyError(f"unknown soundfont {name!r}; known: {sorted(SOUNDFONTS)}")
    package, candidates = SOUNDFONTS[name]
    extra = [d for d in os.environ.get("GENEX_SOUNDFONT_DIRS", "").split(os.pathsep) if d]
    dirs = [Path(d) for d in (*extra, *_DEFAULT_DIRS)]
    for d in dirs:
        for rel in candidates:
            for path in (d / rel, d / Path(rel).name):
                if path.is_file():
                    return path
    raise SoundfontNotFound(
        f"soundfont {name} not found (looked for {', '.join(candidates)} under "
        f"{', '.join(map(str, dirs))}); install the Debian package {package} "
        f"(`make setup` does this)"
    )


@dataclass(frozen=True)
class NoteEvent:
    """A note of a performance: times in seconds, MIDI pitch and velocity."""

    start: float
    end: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class ControlEvent:
    time: float
    number: int
    value: int


class SoundfontSynth:
    """A FluidSynth instance with a set of soundfonts loaded once.

    Parameters
    ----------
    sample_rate:
        Output sample rate in Hz.
    soundfonts:
        Names from :data:`SOUNDFONTS` to load.
    gain:
        FluidSynth master gain; 0.5 leaves headroom for polyphony.
    """

    def __init__(self, sample_rate: int, soundfonts: Iterable[str], gain: float = 0.5):
        import fluidsynth

        global _write_float
        if _write_float is None:
            _write_float = _fluidsynth_write_float()
        self.sample_rate = int(sample_rate)
        self._frames = 0  # rendered so far, to keep renders aligned to FluidSynth's blocks
        self._fs = fluidsynth.Synth(samplerate=float(sample_rate), gain=gain)
        for key, value in (("synth.reverb.active", 0), ("synth.chorus.active", 0)):
            self._fs.setting(key, value)
        self._ids: dict[str, int] = {}
        for name in soundfonts:
            path = find_soundfont(name)
            sfid = self._fs.sfload(str(path))
            if sfid < 0:
                raise RuntimeError(f"{path}: FluidSynth could not load this soundfont")
            self._ids[name] = sfid

    @property
    def soundfonts(self) -> list[str]:
        return list(self._ids)

    def preset_name(self, soundfont: str, program: int, bank: int = 0) -> str | None:
        return self._fs.sfpreset_name(self._ids[soundfont], bank, program) if hasattr(
            self._fs, "sfpreset_name") else None

    def _select(self, soundfont: str, program: int, channel: int = 0) -> None:
        if soundfont not in self._ids:
            raise KeyError(f"soundfont {soundfont!r} was not loaded; loaded: {self.soundfonts}")
        bank = 128 if channel == 9 else 0
        if self._fs.program_select(channel, self._ids[soundfont], bank, int(program)) != 0:
            raise ValueError(f"{soundfont} has no program {program} in bank {bank}")

    def _reset(self) -> None:
        # A full MIDI system reset makes every render independent of the previous
        # one (voices, controllers, modulator phases), hence reproducible.
        # FluidSynth applies events at 64-frame block boundaries and keeps its position in
        # the block across calls: realign so every render starts on a block boundary.
        self._render(-self._frames % _BLOCK)
        self._fs.system_reset()
        self._render(2 * _BLOCK)  # FluidSynth's first block after a reset carries history


    def _render(self, n_frames: int) -> np.ndarray:
        # float output: FluidSynth's 16-bit path dithers with a global noise table,
        # which makes identical notes render differently from call to call.
        if n_frames <= 0:
            return np.zeros(0, dtype=np.float32)
        left = np.zeros(int(n_frames), dtype=np.float32)
        right = np.zeros(int(n_frames), dtype=np.float32)
        ptr = ctypes.POINTER(ctypes.c_float)
        status = _write_float(self._fs.synth, int(n_frames), left.ctypes.data_as(ptr), 0, 1,
                              right.ctypes.data_as(ptr), 0, 1)
        if status != 0:
            raise RuntimeError("FluidSynth failed to render audio")
        self._frames += int(n_frames)
        return 0.5 * (left + right)

    def render_note(self, soundfont: str, program: int, pitch: int, velocity: int,
                    hold: float, duration: float) -> np.ndarray:
        """One note held for ``hold`` seconds in a clip of ``duration`` seconds."""
        self._reset()
        self._select(soundfont, program)
        n_hold = int(round(hold * self.sample_rate))
        n_total = int(round(duration * self.sample_rate))
        self._fs.noteon(0, int(pitch), int(velocity))
        a = self._render(n_hold)
        self._fs.noteoff(0, int(pitch))
        b = self._render(n_total - n_hold)
        self._reset()
        return np.concatenate([a, b])

    def render_performance(self, tracks: Sequence[tuple[str, int, Sequence[NoteEvent],
                                                        Sequence[ControlEvent]]],
                           duration: float) -> np.ndarray:
        """Render several tracks at once.

        Each track is ``(soundfont, program, notes, controls)`` and plays on its own
        channel (track ``i`` on channel ``i``, skipping the drum channel 9).
        Events are applied in time order; a note-off precedes a note-on at the same time.
        """
        self._reset()
        events = []  # (time, order, callable)
        channels = [c for c in range(16) if c != 9]
        if len(tracks) > len(channels):
            raise ValueError(f"at most {len(channels)} tracks, got {len(tracks)}")
        for ch, (soundfont, program, notes, controls) in zip(channels, tracks):
            self._select(soundfont, program, channel=ch)
            for n in notes:
                events.append((n.start, 2, ch, "on", n.pitch, n.velocity))
                events.append((n.end, 0, ch, "off", n.pitch, 0))
            for c in controls:
                events.append((c.time, 1, ch, "cc", c.number, c.value))
        events.sort(key=lambda e: (e[0], e[1]))
        n_total = int(round(duration * self.sample_rate))
        out, cursor = [], 0
        for t, _, ch, kind, a, b in events:
            frame = min(int(round(t * self.sample_rate)), n_total)
            if frame > cursor:
                out.append(self._render(frame - cursor))
                cursor = frame
            if kind == "on":
                self._fs.noteon(ch, a, b)
            elif kind == "off":
                self._fs.noteoff(ch, a)
            else:
                self._fs.cc(ch, a, b)
        out.append(self._render(n_total - cursor))
        self._reset()
        return np.concatenate(out)

    def close(self) -> None:
        self._fs.delete()

    def __enter__(self) -> "SoundfontSynth":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
