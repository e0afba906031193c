"""Sentence pool for the synthetic corpus: WordNet example sentences, normalised and screened.

Why WordNet: it is the largest offline, modern-English sentence source that a Debian machine can
install (package wordnet-base, about 29k usable examples). Screening keeps sentences a synthesiser
reads as written (no abbreviations, acronyms or symbols), of a length that keeps utterances short,
and optionally only sentences built from words that recur in the pool, so a small base model sees
most test words in training.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator, List

from espnet_p4q.data.text_norm import normalize

WORDNET_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
_QUOTED = re.compile(r'"([^"]+)"')
_RAW_OK = re.compile(r"^[A-Za-z0-9 ,;:!?'\-]+[.!?]?$")
_ACRONYM = re.compile(r"\b[A-Z]*[A-Z][A-Za-z]*[A-Z]")
_WORD = re.compile(r"^[A-Z]+(?:'[A-Z]+)*$")
_VOWEL = re.compile(r"[AEIOUY]")


def wordnet_examples(wordnet_dir: str | Path) -> Iterator[str]:
    """Yield the quoted example sentences of WordNet's data.* files, in file order."""
    for name in WORDNET_FILES:
        with open(Path(wordnet_dir) / name, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # licence header
                    continue
                _, sep, gloss = line.partition(" | ")
                if sep:
                    yield from (m.strip() for m in _QUOTED.findall(gloss))


def screen(raw: str, min_words: int, max_words: int, max_word_len: int) -> str | None:
    """Return the normalised sentence, or None when a synthesiser might not say what it reads."""
    raw = raw.strip()
    if not _RAW_OK.match(raw) or _ACRONYM.search(raw):
        return None
    norm = normalize(raw)
    words = norm.split()
    if not min_words <= len(words) <= max_words:
        return None
    for w in words:
        if not _WORD.match(w) or len(w) > max_word_len or not _VOWEL.search(w):
            return None
        if len(w) == 1 and w not in ("A", "I"):
            return None
    return norm


def build_pool(raw_sentences: Iterable[str], min_words: int = 4, max_words: int = 16,
               max_word_len: int = 14, min_word_count: int = 1) -> List[str]:
    """Screen, de-duplicate and (min_word_count > 1) keep sentences of recurring words; sorted."""
    pool = {s for s in (screen(r, min_words, max_words, max_word_len) for r in raw_sentences) if s}
    if min_word_count > 1:
        counts = Counter(w for s in pool for w in s.split())
        pool = {s for s in pool if all(counts[w] >= min_word_count for w in s.split())}
    return sorted(pool)
