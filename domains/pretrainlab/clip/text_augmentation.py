"""Text augmentation of the CLIP-rocket recipe (Fini et al. 2023, Sec. 4 "Improved recipe",
text augmentations; reference code ``datasets.py``).

* Cleanup: lower-case, collapse whitespace, strip punctuation at word edges.
* The **global** caption: stop-word removal with probability ``global_stopword_p`` (0.8 in the
  paper; 0.9 on YFCC).
* Each **augmented** caption: stop-word removal, then ONE EDA operation (Wei & Zou 2019, "EDA:
  Easy Data Augmentation Techniques"): synonym replacement / random swap / random deletion with
  the paper's weights 0.4 / 0.4 / 0.2, each changing ``alpha`` of the words (EDA's alpha).

Works offline: the stop-word list (``wordlists/stopwords.txt``, NLTK's English list as used by
the EDA reference code) and the synonym table (``wordlists/synonyms.json``, hand-written for
this package) ship with it. Deviation: EDA draws synonyms from WordNet; we use the shipped table
(no download), so words outside it are left unchanged by synonym replacement.
"""

from __future__ import annotations

import functools
import json
import random
import re
from pathlib import Path

WORDLISTS = Path(__file__).parent / "wordlists"
_PUNCT = re.compile(r"^[^\w]+|[^\w]+$")


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    lines = (WORDLISTS / "stopwords.txt").read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


@functools.lru_cache(maxsize=1)
def synonyms() -> dict[str, tuple[str, ...]]:
    """word -> its synonyms (every member of a group maps to the other members)."""
    data = json.loads((WORDLISTS / "synonyms.json").read_text(encoding="utf-8"))
    table: dict[str, list[str]] = {}
    for group in data["groups"]:
        for w in group:
            table.setdefault(w, []).extend(x for x in group if x != w)
    return {k: tuple(v) for k, v in table.items()}


def clean(text: str) -> str:
    """Lower-case, strip edge punctuation of each word, collapse whitespace."""
    words = [_PUNCT.sub("", w) for w in text.lower().split()]
    return " ".join(w for w in words if w)


def remove_stopwords(words: list[str]) -> list[str]:
    """Drop stop words; keeps the caption unchanged when it would become empty."""
    kept = [w for w in words if w not in stopwords()]
    return kept or words


def synonym_replacement(words: list[str], n: int, rng: random.Random) -> list[str]:
    """Replace up to ``n`` distinct words that have a synonym (EDA ``synonym_replacement``)."""
    table = synonyms()
    out = list(words)
    cands = [i for i, w in enumerate(out) if w in table]
    rng.shuffle(cands)
    for i in cands[:n]:
        out[i] = rng.choice(table[out[i]])
    return " ".join(out).split()


def random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    """Swap two random positions ``n`` times (EDA ``random_swap``)."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.randrange(len(out)), rng.randrange(len(out))
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], p: float, rng: random.Random) -> list[str]:
    """Delete each word with probability ``p``; keep one random word if all go (EDA ``random_deletion``)."""
    if len(words) <= 1:
        return list(words)
    out = [w for w in words if rng.random() > p]
    return out or [rng.choice(words)]


def eda_once(words: list[str], rng: random.Random, weights: tuple[float, float, float] = (0.4, 0.4, 0.2),
             alpha: float = 0.1) -> list[str]:
    """Apply ONE EDA operation chosen with ``weights`` (synonym replacement, random swap, random deletion)."""
    n = max(1, round(alpha * len(words)))
    op = rng.choices(("sr", "rs", "rd"), weights=weights)[0]
    if op == "sr":
        return synonym_replacement(words, n, rng)
    if op == "rs":
        return random_swap(words, n, rng)
    return random_deletion(words, alpha, rng)


def global_caption(text: str, rng: random.Random, stopword_p: float = 0.8) -> str:
    """The caption of the global pair: cleaned, stop words removed with probability ``stopword_p``."""
    words = clean(text).split()
    if stopword_p > 0 and rng.random() < stopword_p:
        words = remove_stopwords(words)
    return " ".join(words)


def augmented_caption(text: str, rng: random.Random, weights: tuple[float, float, float] = (0.4, 0.4, 0.2),
                      alpha: float = 0.1) -> str:
    """An augmented caption: cleaned, stop words removed, then one EDA operation."""
    words = remove_stopwords(clean(text).split())
    return " ".join(eda_once(words, rng, weights, alpha))
