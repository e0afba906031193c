#!/usr/bin/env python3
"""Build the synthetic speaker-adaptation corpus: plan, synthesise, write data dirs, validate.

Run from the recipe directory (egs2/synth_sa/asr1) through local/data.sh. Audio goes to
<download_dir>/<corpus_name>/<spk>_<speaker digest>/<utt>.wav, data dirs to <data_dir>/. Running it
again reuses every finished file of every speaker whose voice and sentences did not change.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus_plan import DEV, TRAIN, Plan, load_config, make_plan, tts_text  # noqa: E402
from corpus_stats import corpus_stats  # noqa: E402
from corpus_synth import SpeakerJob, SynthItem, synth_all  # noqa: E402
from corpus_voices import voice_for  # noqa: E402
from espnet_p4q.cli import ArgumentParser, guarded  # noqa: E402
from espnet_p4q.data.kaldi_dir import Utterance, write_data_dir  # noqa: E402
from espnet_p4q.data.validate import check_data_dirs  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="conf/data.yaml")
    p.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    p.add_argument("--nj", type=int, default=2, help="parallel synthesis processes")
    p.add_argument("--n_adapt_pool", type=int, default=None,
                   help="adaptation utterances per held-out speaker")
    p.add_argument("--n_test", type=int, default=None, help="test utterances per held-out speaker")
    p.add_argument("--n_train_per_spk", type=int, default=None,
                   help="training utterances per training speaker")
    p.add_argument("--variants_per_voice", type=int, default=None, help="sox variants per natural voice")
    p.add_argument("--data_dir", default="data")
    p.add_argument("--download_dir", default="downloads")
    p.add_argument("--log", default=None, help="append progress here instead of stdout")
    p.add_argument("--plan_only", action="store_true", help="write data/local/plan.json and stop")
    return p


def make_logger(path: str | None) -> Callable[[str], None]:
    if path:
        path = Path(path).resolve()  # main later changes directory; the log stays where it was named
        path.parent.mkdir(parents=True, exist_ok=True)
    def log(msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}\n"
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line)
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
    return log


def scp_path(path: Path) -> str:
    """Relative to the current directory (the recipe dir: see main) when below it, else absolute."""
    path = path.resolve()
    cwd = Path.cwd().resolve()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


def speaker_dir(plan: Plan, audio_dir: Path, spk_id: str) -> Path:
    """<audio_dir>/<spk>_<digest>: a changed speaker gets a new directory, never stale audio."""
    return audio_dir / f"{spk_id}_{plan.speaker_digest(spk_id)}"


def speaker_jobs(plan: Plan, audio_dir: Path) -> List[SpeakerJob]:
    jobs = []
    for spk in plan.speakers:
        voice = voice_for(spk.voice)
        spk_dir = speaker_dir(plan, audio_dir, spk.spk_id)
        items = tuple(SynthItem(u.utt_id, tts_text(u.text), str(spk_dir / f"{u.utt_id}.wav"))
                      for u in plan.utts if u.spk_id == spk.spk_id)
        rate = plan.config["sample_rate"]
        jobs.append(SpeakerJob(spk.spk_id, voice.engine, voice.name,
                               tuple(spk.variant.sox_effects(rate)), items, rate, voice.cost))
    return jobs


def data_dir_groups(plan: Plan) -> Dict[str, List]:
    """Name of each output data dir -> its planned utterances."""
    groups: Dict[str, List] = {TRAIN: [], DEV: []}
    for u in plan.utts:
        name = u.split if u.split in (TRAIN, DEV) else f"{u.spk_id}_{u.split}"
        groups.setdefault(name, []).append(u)
    return groups


def write_outputs(plan: Plan, audio_dir: Path, data_dir: Path) -> List[Path]:
    dirs = []
    spk_dirs = {s.spk_id: speaker_dir(plan, audio_dir, s.spk_id) for s in plan.speakers}
    for name, utts in sorted(data_dir_groups(plan).items()):
        dirs.append(write_data_dir(data_dir / name, [
            Utterance(u.utt_id, u.spk_id, scp_path(spk_dirs[u.spk_id] / f"{u.utt_id}.wav"), u.text)
            for u in utts]))
    for role, fname in (("tune", "sa_tune.list"), ("eval", "sa_eval.list")):
        ids = sorted(s.spk_id for s in plan.speakers if s.role == role)
        (data_dir / fname).write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    local = data_dir / "local"
    local.mkdir(parents=True, exist_ok=True)
    described = {s.spk_id: s.describe(plan.config["sample_rate"]) for s in plan.speakers}
    (local / "speakers.json").write_text(json.dumps(described, indent=1, sort_keys=True) + "\n")
    (local / "audio_dir").write_text(scp_path(audio_dir) + "\n")
    return dirs


@guarded("build_corpus.py")
def main(argv: List[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # let the pool be torn down
    log = make_logger(args.log)
    cfg = load_config(args.config, {
        "seed": args.seed, "heldout.n_adapt_pool": args.n_adapt_pool, "heldout.n_test": args.n_test,
        "train.utts_per_speaker": args.n_train_per_spk, "train.variants_per_voice": args.variants_per_voice,
    })
    t0 = time.time()
    plan = make_plan(cfg)
    data_dir = Path(args.data_dir).resolve()
    audio_dir = (Path(args.download_dir) / cfg["corpus_name"]).resolve()
    # wav.scp paths are written and checked relative to the recipe dir that holds data/ (where
    # Kaldi and ESPnet tools read them), also when the audio is another recipe's (synth_sa_whisper)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    os.chdir(data_dir.parent)
    log(f"[plan] {len(plan.speakers)} speakers, {len(plan.utts)} utterances, seed {cfg['seed']}, "
        f"audio in {audio_dir} ({time.time() - t0:.1f} s)")
    if args.plan_only:
        (data_dir / "local").mkdir(parents=True, exist_ok=True)
        (data_dir / "local" / "plan.json").write_text(json.dumps(
            [[u.utt_id, u.spk_id, u.split, u.text] for u in plan.utts], indent=0) + "\n")
        return 0
    audio_dir.mkdir(parents=True, exist_ok=True)
    with open(audio_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"[error] another build is writing {audio_dir}")
            return 1
        t1 = time.time()
        n, new = synth_all(speaker_jobs(plan, audio_dir), args.nj, log)
        log(f"[synth] {n} utterances, {new} synthesised now, {time.time() - t1:.1f} s wall")
    dirs = write_outputs(plan, audio_dir, data_dir)
    reports = check_data_dirs(dirs, sample_rate=cfg["sample_rate"])
    log(f"[validate] {len(reports)} data dirs OK")
    stats = corpus_stats(data_dir, [d.name for d in dirs])
    (data_dir / "corpus_stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    tot = stats["total"]
    log(f"[done] {tot['speakers']} speakers, {tot['utterances']} utterances, {tot['hours']:.2f} h; "
        f"{time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
