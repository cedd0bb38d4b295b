"""Caption augmentation of the CLIP-rocket recipe (Fini et al. 2023, Sec. 4; reference
``tokenizer.SimpleTokenizer.weak_augment`` / ``strong_augment`` with ``--text-augment``).

* Optional cleanup first (``--clean-before-augment``, YFCC15M runs): open_clip's / CLIP's
  ``basic_clean`` (ftfy, HTML unescape) + ``whitespace_clean`` + lower-case.
* The **global** caption (``weak_augment``): stop-word removal with probability ``stopword_p``
  (0.8; 0.9 on YFCC15M); a caption that would become empty is kept.
* Each **augmented** caption (``strong_augment``): the same stop-word removal with probability
  ``stopword_p``, then ONE operation drawn with weights (identity ``no_aug_p`` = 0, synonym
  replacement 0.4, random swap 0.4, random deletion 0.2) from EDA (Wei & Zou 2019) as the
  ``textaugment`` package implements it: synonym replacement of ``n = 1`` distinct non-stop word
  (every occurrence), ``n = 1`` random swap of two distinct positions (3 retries), deletion of each
  word with ``p = 0.1`` (one random word kept when all go).

Stop words: NLTK's English list (``wordlists/stopwords.txt``), matched case-insensitively on tokens
split like NLTK's ``word_tokenize`` (words and punctuation apart). Deviation: textaugment draws
synonyms from WordNet; we use the shipped table (``wordlists/synonyms.json``, no download), so words
outside it have no synonym (synonym replacement then leaves the caption unchanged, as textaugment
does for words WordNet does not know).
"""

from __future__ import annotations

import functools
import json
import random
import re
from pathlib import Path

WORDLISTS = Path(__file__).parent / "wordlists"
_TOKEN = re.compile(r"\w+(?:'\w+)?|[^\w\s]")


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
    """ref ``--clean-before-augment``: ``whitespace_clean(basic_clean(text)).lower()`` (open_clip's tokenizer helpers)."""
    from open_clip.tokenizer import basic_clean, whitespace_clean

    return whitespace_clean(basic_clean(text)).lower()


def remove_stopwords(text: str) -> str:
    """ref: ``" ".join(w for w in word_tokenize(text) if w.lower() not in stopwords)``; the text itself
    when nothing would be left."""
    kept = " ".join(w for w in _TOKEN.findall(text) if w.lower() not in stopwords())
    return kept or text


def synonym_replacement(text: str, n: int, rng: random.Random) -> str:
    """textaugment ``EDA.synonym_replacement``: up to ``n`` distinct non-stop words that have a synonym
    are replaced (every occurrence) by a random synonym."""
    table, stop = synonyms(), stopwords()
    words = text.split()
    cands = sorted({w for w in words if w not in stop})
    rng.shuffle(cands)
    replaced = 0
    for w in cands:
        syn = table.get(w.lower(), ())
        if syn:
            new = rng.choice(syn)
            words = [new if x == w else x for x in words]
            replaced += 1
        if replaced >= n:
            break
    return " ".join(words)


def random_swap(text: str, n: int, rng: random.Random) -> str:
    """textaugment ``EDA.random_swap``: ``n`` times swap two distinct random positions (3 retries)."""
    words = text.split()
    for _ in range(n):
        if not words:
            break
        i = j = rng.randint(0, len(words) - 1)
        tries = 0
        while j == i:
            j = rng.randint(0, len(words) - 1)
            tries += 1
            if tries > 3:
                break
        if i != j:
            words[i], words[j] = words[j], words[i]
    return " ".join(words)


def random_deletion(text: str, p: float, rng: random.Random) -> str:
    """textaugment ``EDA.random_deletion``: drop each word with probability ``p``; one random word
    is kept when all would go; a one-word caption is unchanged."""
    words = text.split()
    if len(words) <= 1:
        return text
    kept = [w for w in words if rng.uniform(0, 1) > p]
    return " ".join(kept) if kept else rng.choice(words)


def global_caption(text: str, rng: random.Random, stopword_p: float = 0.8, clean_first: bool = False) -> str:
    """ref ``weak_augment``: the caption of the global pair."""
    if clean_first:
        text = clean(text)
    if text and rng.random() < stopword_p:
        text = remove_stopwords(text)
    return text


def augmented_caption(text: str, rng: random.Random, stopword_p: float = 0.8, no_aug_p: float = 0.0,
                      weights: tuple[float, float, float] = (0.4, 0.4, 0.2), n: int = 1, deletion_p: float = 0.1,
                      clean_first: bool = False) -> str:
    """ref ``strong_augment``: stop words removed with ``stopword_p``, then one EDA operation."""
    if clean_first:
        text = clean(text)
    if not text:
        return text
    if rng.random() < stopword_p:
        text = remove_stopwords(text)
    op = rng.choices(("id", "sr", "rs", "rd"), weights=(no_aug_p, *weights))[0]
    if op == "sr":
        out = synonym_replacement(text, n, rng)
    elif op == "rs":
        out = random_swap(text, n, rng)
    elif op == "rd":
        out = random_deletion(text, deletion_p, rng)
    else:
        out = text
    return out or text
