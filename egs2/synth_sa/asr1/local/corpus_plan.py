"""Plan the corpus from a config and a seed: speakers, sentences, splits and utterance ids.

Why a separate plan: everything that decides *what* is in the corpus is a pure function of the
config, the seed and the (Debian-packaged) WordNet files, so two machines with the same seed build
the same text and ids, and each speaker's audio directory can be keyed by a digest of its part.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping

import yaml

from corpus_sentences import build_pool, wordnet_examples
from corpus_voices import Speaker, Variant, training_variants, variant_from_config, voice_for
from espnet_p4q.data.splits import disjoint_draw

SPK_RE = re.compile(r"^[a-z0-9_]+$")
TRAIN, DEV, ADAPT, TEST = "train", "dev", "adapt", "test"
FIRST_INDEX = {TRAIN: 1, DEV: 100001, ADAPT: 1, TEST: 100001}


@dataclass(frozen=True)
class PlannedUtt:
    utt_id: str
    spk_id: str
    split: str  # train | dev | adapt | test
    text: str  # normalised, upper case


@dataclass
class Plan:
    config: dict
    speakers: List[Speaker]
    utts: List[PlannedUtt]

    def speaker_digest(self, spk_id: str) -> str:
        """Hash of everything that determines one speaker's audio (voice, effects, texts, rate):
        the speaker's audio directory is named by it, so a changed speaker is synthesised anew
        and an unchanged one is reused."""
        blob = json.dumps({
            "sample_rate": self.config["sample_rate"],
            "speaker": self.speaker(spk_id).describe(self.config["sample_rate"]),
            "utts": [asdict(u) for u in self.utts if u.spk_id == spk_id],
        }, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:8]

    def speaker(self, spk_id: str) -> Speaker:
        return next(s for s in self.speakers if s.spk_id == spk_id)


def load_config(path: str, overrides: Mapping[str, object] | None = None) -> dict:
    """Read a YAML data config and apply dotted-key overrides, e.g. {"heldout.n_test": 40}."""
    with open(path, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    cfg.setdefault("sample_rate", 16000)
    return cfg


def _espeak_id(name: str) -> str:
    return "tr_esp_" + re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def make_speakers(cfg: Mapping) -> List[Speaker]:
    """Training speakers (each natural voice, unmodified and in sox variants) and held-out ones."""
    seed = int(cfg["seed"])
    tr = cfg["train"]
    box = tr["box"]
    speakers: List[Speaker] = []
    for voice in cfg["natural_voices"]:
        voice_for(voice)
        if tr.get("include_unmodified", True):
            speakers.append(Speaker(f"tr_{voice}_00", voice, Variant(), "train"))
        for i, var in enumerate(training_variants(voice, int(tr["variants_per_voice"]), box, seed), 1):
            speakers.append(Speaker(f"tr_{voice}_{i:02d}", voice, var, "train"))
    for name in tr.get("espeak_voices") or []:
        speakers.append(Speaker(_espeak_id(name), f"espeak:{name}", Variant(), "train"))
    seen_voices = set(cfg["natural_voices"])
    for entry in cfg["heldout"]["speakers"]:
        spk = Speaker(entry["id"], entry["voice"], variant_from_config(entry), entry["role"])
        if spk.role not in ("tune", "eval"):
            raise ValueError(f"{spk.spk_id}: role must be tune or eval")
        if spk.voice not in seen_voices:
            raise ValueError(f"{spk.spk_id}: voice {spk.voice} is not a training voice")
        spk.variant.check_limits()
        if not spk.variant.outside_box(box):
            raise ValueError(f"{spk.spk_id}: variant lies inside the training box; not held out")
        speakers.append(spk)
    ids = [s.spk_id for s in speakers]
    bad = [s for s in ids if not SPK_RE.match(s)]
    if bad or len(set(ids)) != len(ids):
        raise ValueError(f"speaker ids must be unique and match [a-z0-9_]+: {bad or ids}")
    return speakers


def make_plan(cfg: dict) -> Plan:
    """Speakers plus disjoint sentence sets: train, then dev/adapt/test from the remainder."""
    seed = int(cfg["seed"])
    sc = cfg["sentences"]
    pool = build_pool(wordnet_examples(sc["wordnet_dir"]), sc["min_words"], sc["max_words"],
                      sc["max_word_len"], sc.get("min_word_count", 1))
    speakers = make_speakers(cfg)
    train_spks = [s for s in speakers if s.role == "train"]
    held = [s for s in speakers if s.role != "train"]
    n_train, n_dev = int(cfg["train"]["utts_per_speaker"]), int(cfg["train"]["dev_utts_per_speaker"])
    n_adapt, n_test = int(cfg["heldout"]["n_adapt_pool"]), int(cfg["heldout"]["n_test"])

    first = disjoint_draw(pool, {s.spk_id: n_train for s in train_spks}, seed)
    used = {t for ts in first.values() for t in ts}
    rest = [t for t in pool if t not in used]
    if sc.get("closed_vocab", False):
        vocab = {w for t in used for w in t.split()}
        rest = [t for t in rest if all(w in vocab for w in t.split())]
    sizes: Dict[str, int] = {}
    for s in held:
        sizes[f"{TEST}:{s.spk_id}"] = n_test
    for s in held:
        sizes[f"{ADAPT}:{s.spk_id}"] = n_adapt
    for s in train_spks:
        sizes[f"{DEV}:{s.spk_id}"] = n_dev
    if sum(sizes.values()) > len(rest):
        raise ValueError(f"only {len(rest)} sentences left for dev/adapt/test, {sum(sizes.values())} "
                         "needed (closed_vocab keeps only sentences of training words)")
    second = disjoint_draw(rest, sizes, seed + 1)

    utts: List[PlannedUtt] = []

    def add(spk: str, split: str, texts: List[str]) -> None:
        for i, t in enumerate(texts):
            utts.append(PlannedUtt(f"{spk}-{FIRST_INDEX[split] + i:06d}", spk, split, t))

    for s in train_spks:
        add(s.spk_id, TRAIN, first[s.spk_id])
        add(s.spk_id, DEV, second[f"{DEV}:{s.spk_id}"])
    for s in held:
        add(s.spk_id, ADAPT, second[f"{ADAPT}:{s.spk_id}"])
        add(s.spk_id, TEST, second[f"{TEST}:{s.spk_id}"])
    utts.sort(key=lambda u: u.utt_id)
    return Plan(cfg, speakers, utts)


def tts_text(text: str) -> str:
    """What the synthesiser reads: lower case (capitals can be spelled out as letters), but the
    pronoun I kept upper case."""
    words = [w.lower() for w in text.split()]
    return " ".join("I" + w[1:] if w == "i" or w.startswith("i'") else w for w in words)
