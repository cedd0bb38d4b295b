"""Synthetic captions for multi-task contrastive pre-training (PIGEON Sec. 3.2).

Each image's metadata becomes a caption: ``"A Street View photo [close to the town of X ][in the
region of Y ]in {country}."`` followed by a shuffled random subset of auxiliary sentences on the
climate zone, the driving side, the compass heading and the month. Optional parts are included
each with probability ``p_optional`` (the paper samples them at random; its exact rates are not
given). Captions are drawn afresh every time a sample is loaded.
"""

from __future__ import annotations

import random

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
CLIMATE_WORDS = {"A": "tropical", "BW": "desert", "BS": "semi-arid steppe", "Cs": "Mediterranean",
                 "Cw": "subtropical highland", "Cf": "temperate oceanic", "Ds": "continental dry-summer",
                 "Dw": "continental dry-winter", "Df": "humid continental", "ET": "tundra", "EF": "ice cap"}


def climate_phrase(k: str) -> str:
    for key in (k[:2], k[:1]):
        if key in CLIMATE_WORDS:
            return f"{CLIMATE_WORDS[key]} ({k})"
    return k


def compass(heading: float) -> str:
    return COMPASS[int(((heading % 360) + 22.5) // 45) % 8]


def build_caption(meta: dict[str, str], rng: random.Random, p_optional: float = 0.5) -> str:
    """One caption from a metadata row (keys as the CSV columns; missing ones are skipped)."""
    country = meta.get("country_name") or meta.get("country") or "an unknown country"
    head = "A Street View photo "
    if meta.get("town") and rng.random() < p_optional:
        head += f"close to the town of {meta['town']} "
    if meta.get("region") and rng.random() < p_optional:
        head += f"in the region of {meta['region']} "
    head += f"in {country}."
    extra = []
    if meta.get("climate") and rng.random() < p_optional:
        extra.append(f"This location has a {climate_phrase(meta['climate'])} climate.")
    if meta.get("drive_side") and rng.random() < p_optional:
        extra.append(f"In this location, people drive on the {meta['drive_side']} side of the road.")
    if meta.get("heading") and rng.random() < p_optional:
        try:
            extra.append(f"This photo is facing {compass(float(meta['heading']))}.")
        except ValueError:
            pass
    if meta.get("month") and rng.random() < p_optional:
        try:
            extra.append(f"This photo was taken in {MONTHS[int(float(meta['month'])) - 1]}.")
        except (ValueError, IndexError):
            pass
    rng.shuffle(extra)
    return " ".join([head] + extra)
