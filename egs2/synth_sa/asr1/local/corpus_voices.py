"""Voices of the synthetic corpus: natural TTS voices and sox variants of them.

Why variants: a base model trained on a handful of voices does not recognise a new voice (WER near
1.0 in FIELD_NOTES). Many variants around each natural voice (speed, pitch, spectral tilt) teach it
to tolerate speaker variation, while a held-out speaker made from a seen voice with parameters
outside the training box (plus a colouring EQ never used in training) is still recognisable but
carries a consistent mismatch that a per-speaker adapter can learn.

Note that sox `speed` scales tempo, pitch and formants together (like a shorter or longer vocal
tract and a faster talker) while `pitch` scales pitch and formants but keeps the duration.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class NaturalVoice:
    """A synthesiser voice: ``engine`` is flite, festival or espeak; ``name`` its voice name."""

    engine: str
    name: str
    cost: float  # relative synthesis time per utterance (for scheduling only)


NATURAL_VOICES: Dict[str, NaturalVoice] = {
    "awb": NaturalVoice("flite", "awb", 1.0),  # Scottish male, clustergen
    "rms": NaturalVoice("flite", "rms", 1.0),  # US male, clustergen
    "slt": NaturalVoice("flite", "slt", 1.0),  # US female, clustergen
    "kal16": NaturalVoice("flite", "kal16", 0.3),  # US male, diphone
    "ked": NaturalVoice("festival", "ked_diphone", 0.4),  # US male, diphone
    "kal": NaturalVoice("festival", "kal_diphone", 0.4),  # US male (same talker as kal16)
    "slthts": NaturalVoice("festival", "cmu_us_slt_arctic_hts", 2.5),  # US female (as slt), HTS
}

# Intelligible limits measured in FIELD_NOTES: speed 0.92-1.12, pitch -500..+400 cents.
LIMITS = {"speed": (0.92, 1.12), "pitch": (-500.0, 400.0), "bass": (-10.0, 10.0), "treble": (-10.0, 10.0)}
AXES = ("speed", "pitch", "bass", "treble")
_ROUND = {"speed": 0.005, "pitch": 10.0, "bass": 0.5, "treble": 0.5}


def voice_for(key: str) -> NaturalVoice:
    """Look up a natural voice key; ``espeak:<voice>`` keys name espeak-ng voices directly."""
    if key in NATURAL_VOICES:
        return NATURAL_VOICES[key]
    if key.startswith("espeak:"):
        return NaturalVoice("espeak", key.split(":", 1)[1], 0.3)
    raise KeyError(f"unknown voice '{key}' (known: {', '.join(NATURAL_VOICES)}, espeak:<voice>)")


@dataclass(frozen=True)
class Variant:
    """sox post-processing that turns a natural voice into a speaker variant."""

    speed: float = 1.0
    pitch: float = 0.0  # cents
    bass: float = 0.0  # dB shelf at 100 Hz
    treble: float = 0.0  # dB shelf at 3 kHz
    eq: Tuple[Tuple[float, float, float], ...] = ()  # (centre Hz, Q, gain dB) peaks or notches
    lowpass: Optional[float] = None  # Hz
    highpass: Optional[float] = None  # Hz

    def sox_effects(self, sample_rate: int = 16000) -> List[str]:
        """sox effect arguments; the chain ends with peak normalisation to -1 dBFS.

        speed and pitch defer resampling, so an explicit ``rate`` follows them: filters after it
        then work at the output rate (a lowpass near Nyquist would otherwise fail)."""
        fx: List[str] = []
        if self.speed != 1.0:
            fx += ["speed", f"{self.speed:g}"]
        if self.pitch:
            fx += ["pitch", f"{self.pitch:g}"]
        if fx:
            fx += ["rate", str(sample_rate)]
        if self.bass:
            fx += ["bass", f"{self.bass:g}"]
        if self.treble:
            fx += ["treble", f"{self.treble:g}"]
        for freq, q, gain in self.eq:
            fx += ["equalizer", f"{freq:g}", f"{q:g}q", f"{gain:g}"]
        if self.highpass:
            fx += ["highpass", f"{self.highpass:g}"]
        if self.lowpass:
            fx += ["lowpass", f"{self.lowpass:g}"]
        return fx + ["norm", "-1"]

    def outside_box(self, box: Mapping[str, Sequence[float]]) -> List[str]:
        """Names of the parameters that lie outside a training box (EQ/filters always count)."""
        out = [a for a in AXES if a in box and not box[a][0] <= getattr(self, a) <= box[a][1]]
        if self.eq:
            out.append("eq")
        if self.lowpass or self.highpass:
            out.append("band")
        return out

    def check_limits(self) -> None:
        for a in AXES:
            lo, hi = LIMITS[a]
            if not lo <= getattr(self, a) <= hi:
                raise ValueError(f"{a}={getattr(self, a)} outside intelligible limits {lo}..{hi}")


@dataclass(frozen=True)
class Speaker:
    """One corpus speaker: id, natural voice key, variant and role (train, tune or eval)."""

    spk_id: str
    voice: str
    variant: Variant = field(default_factory=Variant)
    role: str = "train"

    def describe(self, sample_rate: int = 16000) -> dict:
        v = voice_for(self.voice)
        return {"voice": self.voice, "engine": v.engine, "engine_voice": v.name, "role": self.role,
                "variant": asdict(self.variant), "sox_effects": self.variant.sox_effects(sample_rate)}


def _snap(axis: str, x: float) -> float:
    step = _ROUND[axis]
    return round(round(x / step) * step, 6)


def training_variants(voice: str, n: int, box: Mapping[str, Sequence[float]], seed: int) -> List[Variant]:
    """``n`` variants of one voice, stratified over each axis of ``box`` (Latin hypercube), so
    that even a few variants span the whole range of every parameter. Deterministic in seed."""
    rng = random.Random(f"{seed}:{voice}")
    columns = {}
    for axis in AXES:
        neutral = getattr(Variant(), axis)
        lo, hi = box.get(axis, (neutral, neutral))
        strata = list(range(n))
        rng.shuffle(strata)
        columns[axis] = [_snap(axis, lo + (s + rng.random()) / n * (hi - lo)) for s in strata]
    return [Variant(**{a: columns[a][i] for a in AXES}) for i in range(n)]


def variant_from_config(entry: Mapping) -> Variant:
    """Build a held-out variant from a config entry (speed, pitch, bass, treble, eq, lowpass...)."""
    eq = tuple(tuple(float(x) for x in e) for e in entry.get("eq", ()))
    return Variant(
        speed=float(entry.get("speed", 1.0)), pitch=float(entry.get("pitch", 0.0)),
        bass=float(entry.get("bass", 0.0)), treble=float(entry.get("treble", 0.0)), eq=eq,
        lowpass=entry.get("lowpass"), highpass=entry.get("highpass"),
    )
