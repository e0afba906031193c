#!/usr/bin/env python3
"""Cheap acoustic profile of every speaker: pitch, speaking rate, long-term spectrum distance.

Why: without training a recogniser, these numbers show whether a held-out speaker sits just
outside the cloud of training speakers (near its own natural voice, farther than training
speakers are from each other, but not far beyond) -- the regime where an unadapted base model
still works and adaptation has something consistent to remove.

Usage (from the recipe dir): python local/voice_stats.py [--data_dir data] [--n_utts 20]
Writes <data_dir>/local/voice_stats.json and prints a table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from espnet_p4q.cli import ArgumentParser, guarded  # noqa: E402
from espnet_p4q.data.kaldi_dir import Utterance, read_data_dir  # noqa: E402

SR, N_FFT, HOP, N_MELS = 16000, 400, 160, 40
# Spectra are compared below 5 kHz: above it, pitch-down variants are empty by construction (sox
# scales the 8 kHz band edge along with the formants), and that edge would swamp the distance.
LTAS_MAX_HZ = 5000


def mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, sr: int = SR) -> np.ndarray:
    """Triangular filters equally spaced on the mel scale (HTK formula)."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    inv = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = inv(np.linspace(mel(20), mel(sr / 2), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1 / sr)
    fb = np.zeros((n_mels, len(bins)))
    for i in range(n_mels):
        lo, c, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)), 0, None)
    return fb


def _band_centres(n_mels: int = N_MELS, sr: int = SR) -> np.ndarray:
    fb = mel_filterbank(n_mels, N_FFT, sr)
    return np.fft.rfftfreq(N_FFT, 1 / sr)[fb.argmax(axis=1)]


BANDS = _band_centres() < LTAS_MAX_HZ


def frames(x: np.ndarray, n: int = N_FFT, hop: int = HOP) -> np.ndarray:
    if len(x) < n:
        x = np.pad(x, (0, n - len(x)))
    idx = np.arange(n)[None, :] + hop * np.arange(1 + (len(x) - n) // hop)[:, None]
    return x[idx]


def f0_yin(fr: np.ndarray, sr: int = SR, fmin: float = 50, fmax: float = 400,
           threshold: float = 0.15) -> np.ndarray:
    """Per-frame F0 by YIN (first dip of the cumulative-mean-normalised difference below
    ``threshold``); NaN where no dip is found (unvoiced)."""
    w = fr.shape[1] // 2
    max_lag = min(int(sr / fmin), w)
    x = fr - fr.mean(axis=1, keepdims=True)
    d = np.stack([((x[:, :w] - x[:, tau:tau + w]) ** 2).sum(axis=1) for tau in range(max_lag)], axis=1)
    cum = np.cumsum(d[:, 1:], axis=1) / np.arange(1, max_lag)
    dn = np.ones_like(d)
    dn[:, 1:] = d[:, 1:] / np.maximum(cum, 1e-12)
    lo = int(sr / fmax)
    f0 = np.full(len(fr), np.nan)
    for i, row in enumerate(dn):
        below = np.nonzero(row[lo:] < threshold)[0]
        if below.size:
            tau = lo + below[0]
            while tau + 1 < max_lag and row[tau + 1] < row[tau]:
                tau += 1
            f0[i] = sr / tau
    return f0


def speaker_profile(utts: List[Utterance], fb: np.ndarray) -> dict:
    ltas, f0s, secs, words = [], [], 0.0, 0
    for u in utts:
        x, sr = soundfile.read(u.wav, dtype="float32")
        assert sr == SR
        fr = frames(x)
        energy = (fr ** 2).mean(axis=1)
        speech = energy > energy.max() * 1e-3
        power = np.abs(np.fft.rfft(fr[speech] * np.hanning(N_FFT), axis=1)) ** 2
        ltas.append(np.log(power @ fb[BANDS].T + 1e-8).mean(axis=0))
        long = frames(x, 1024, 320)
        long_energy = (long ** 2).mean(axis=1)
        f0s.append(f0_yin(long[long_energy > long_energy.max() * 1e-2]))
        secs += speech.sum() * HOP / SR
        words += len(u.text.split())
    f0 = np.concatenate(f0s)
    lt = np.mean(ltas, axis=0)
    return {"ltas": lt - lt.mean(), "median_f0_hz": float(np.nanmedian(f0)),
            "speech_s_per_word": secs / max(words, 1)}


@guarded("voice_stats.py")
def main(argv: List[str] | None = None) -> int:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data_dir", default="data")
    p.add_argument("--n_utts", type=int, default=20)
    args = p.parse_args(argv)
    data = Path(args.data_dir)
    speakers: Dict[str, List[Utterance]] = {}
    for d in [data / "train"] + sorted(data.glob("*_adapt")):
        for u in read_data_dir(d):
            speakers.setdefault(u.spk_id, []).append(u)
    fb = mel_filterbank()
    prof = {s: speaker_profile(us[:args.n_utts], fb) for s, us in sorted(speakers.items())}
    train = [s for s in prof if s.startswith("tr_")]
    dist = lambda a, b: float(np.sqrt(np.mean((prof[a]["ltas"] - prof[b]["ltas"]) ** 2)))  # noqa: E731
    nn_train = [min(dist(s, t) for t in train if t != s) for s in train]
    ref = float(np.median(nn_train))
    out = {"train_nn_ltas_dist_median": ref, "speakers": {}}
    print(f"{'speaker':14s} {'F0 Hz':>6s} {'s/word':>6s} {'nearest training speaker':>26s} {'dist/ref':>8s}")
    for s in prof:
        cands = [t for t in train if t != s]
        near = min(cands, key=lambda t: dist(s, t))
        row = {"median_f0_hz": round(prof[s]["median_f0_hz"], 1),
               "speech_s_per_word": round(prof[s]["speech_s_per_word"], 3),
               "nearest_train": near, "ltas_dist_over_train_nn": round(dist(s, near) / ref, 2)}
        out["speakers"][s] = row
        print(f"{s:14s} {row['median_f0_hz']:6.0f} {row['speech_s_per_word']:6.3f} {near:>26s} "
              f"{row['ltas_dist_over_train_nn']:8.2f}")
    (data / "local").mkdir(parents=True, exist_ok=True)
    (data / "local" / "voice_stats.json").write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
