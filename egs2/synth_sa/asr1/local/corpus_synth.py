"""Synthesise the corpus audio: one job per speaker, resumable, parallel, never half-written files.

Why this shape: festival pays a start-up cost per process, so it speaks all missing sentences of a
speaker in one batch; flite and espeak-ng start in milliseconds and run per sentence. Every file is
written under a hidden temporary name in the speaker's directory and renamed into place only when
complete, so a killed run leaves nothing that looks finished, and a restarted run skips every
finished file. Parallelism uses threads that wait on the synthesiser processes (the work happens in
those processes): no forked Python workers that could outlive or deadlock a killed parent, and every
external command has a timeout, so a stuck synthesiser fails the build instead of hanging it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence, Tuple

TMP_PREFIX = ".tmp-"
_STOP = threading.Event()  # set when the build is interrupted: running jobs stop at the next file


class Interrupted(RuntimeError):
    pass


def _check_stop() -> None:
    if _STOP.is_set():
        raise Interrupted("synthesis interrupted")


@dataclass(frozen=True)
class SynthItem:
    utt_id: str
    text: str  # what the synthesiser reads (normalised, lower case)
    out_path: str


@dataclass(frozen=True)
class SpeakerJob:
    spk_id: str
    engine: str  # flite | festival | espeak
    voice: str
    effects: Tuple[str, ...]
    items: Tuple[SynthItem, ...]
    sample_rate: int = 16000
    cost: float = 1.0


def _run(cmd: Sequence[str], timeout: float = 120) -> None:
    try:
        proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"command timed out after {timeout:.0f} s: {' '.join(cmd)[:300]}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-2000:]
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(cmd)[:300]}\n{err}")


def _festival_batch(voice: str, texts: Sequence[Tuple[str, str]], script: Path) -> None:
    """Speak (text, raw_path) pairs with one festival process."""
    lines = [f"(voice_{voice})"]
    for text, path in texts:
        if '"' in text or "\\" in text:
            raise ValueError(f"text not safe for a festival string: {text!r}")
        lines.append(f'(utt.save.wave (utt.synth (Utterance Text "{text}")) "{path}" \'riff)')
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        _run(["festival", "--batch", str(script)], timeout=120 + 10 * len(texts))
    finally:
        script.unlink(missing_ok=True)


def _raw_synth(job: SpeakerJob, todo: Sequence[SynthItem], raws: Sequence[Path], tag: str) -> None:
    if job.engine == "festival":
        script = raws[0].with_name(f"{tag}festival.scm")
        _festival_batch(job.voice, [(it.text, str(r)) for it, r in zip(todo, raws)], script)
    elif job.engine == "flite":
        for it, raw in zip(todo, raws):
            _check_stop()
            _run(["flite", "-voice", job.voice, "-t", it.text, "-o", str(raw)])
    elif job.engine == "espeak":
        for it, raw in zip(todo, raws):
            _check_stop()
            _run(["espeak-ng", "-v", job.voice, "-w", str(raw), it.text])
    else:
        raise ValueError(f"unknown engine {job.engine}")


def clean_temporaries(directory: Path) -> int:
    """Remove temporary files a killed run left behind; return how many."""
    n = 0
    for p in directory.glob(f"{TMP_PREFIX}*"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def synth_speaker(job: SpeakerJob) -> Tuple[str, int, int, float]:
    """Create every missing wav of one speaker; return (spk, n_items, n_new, seconds)."""
    start = time.time()
    dirs = {Path(it.out_path).parent for it in job.items}
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        clean_temporaries(d)
    todo = [it for it in job.items if not os.path.exists(it.out_path)]
    if todo:
        tag = f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-"
        raws = [Path(it.out_path).with_name(f"{tag}{it.utt_id}.raw.wav") for it in todo]
        try:
            _raw_synth(job, todo, raws, tag)
            for it, raw in zip(todo, raws):
                _check_stop()
                final = Path(it.out_path)
                tmp = final.with_name(f"{tag}{it.utt_id}.wav")
                _run(["sox", "-R", "-V1", str(raw), "-r", str(job.sample_rate), "-c", "1", "-b", "16",
                      "-e", "signed-integer", str(tmp), *job.effects])
                os.replace(tmp, final)
                raw.unlink()
        finally:
            for d in dirs:
                for p in d.glob(f"{tag}*"):
                    p.unlink(missing_ok=True)
    return job.spk_id, len(job.items), len(todo), time.time() - start


def synth_all(jobs: Iterable[SpeakerJob], nj: int, log: Callable[[str], None]) -> Tuple[int, int]:
    """Run speaker jobs ``nj`` at a time (costliest first); return (n_items, n_new)."""
    jobs = sorted(jobs, key=lambda j: -j.cost * len(j.items))
    _STOP.clear()
    total_items = total_new = done = 0
    with ThreadPoolExecutor(max_workers=max(1, nj)) as pool:
        futures = [pool.submit(synth_speaker, j) for j in jobs]
        try:
            for fut in as_completed(futures):
                spk, n, new, secs = fut.result()
                done += 1
                total_items += n
                total_new += new
                log(f"[synth] {done}/{len(jobs)} {spk}: {n} utterances ({new} new) in {secs:.1f} s")
        except BaseException:
            _STOP.set()  # running jobs stop after their current file; queued ones never start
            for f in futures:
                f.cancel()
            raise
    return total_items, total_new
