"""Synthetic captions for multi-task contrastive pre-training (PIGEON Sec. 3.2), as the reference
generates them (``dataset_creation/pretrain/pretrain_dataset.py`` ``_select_caption`` for PIGEON's
Street View data, ``pretrain_dataset_yfcc.py`` for PIGEOTTO's Flickr data).

Street View (``style="streetview"``), each part drawn with the reference's probabilities:

- ``"A Street View photo [close to the town of T ][in the region of R ]in C."`` with the region
  kept with probability 0.6 and the town 0.4; the location sentence is always present unless a
  climate sentence was drawn, then with probability 0.7;
- ``" This location has <climate>."`` (0.4), ``" In this location, people drive on the
  <side> side of the road."`` (0.3, only without a climate sentence), ``" This photo is facing
  <north|east|south|west>."`` (0.3; heading + the view's offset, 90 degrees per panorama view),
  ``" The photo was taken in <Month>."`` (0.3); these are shuffled, appended and the caption
  stripped. Countries in the reference's ``THE_LIST`` get "the" (the United States, ...).

YFCC (``style="yfcc"``): ``"A photo I took [close to the town of T ][in the region of R ]in C."``
(town and region always when known), a climate sentence with probability 0.45 and a driving-side
sentence with 0.2 (only without climate); no heading or month.

The reference's climate strings are the Koppen class descriptions of its raster; here
``"a <description> climate (<code>)"``.
"""

from __future__ import annotations

import random

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# pretrain_dataset.py THE_LIST: countries written with "the"
THE_LIST = ("Bahamas", "British Virgin Islands", "Cayman Islands", "Cocos Islands", "Comoros", "Cook Islands",
            "Falkland Islands", "Faroe Islands", "French Southern Territories", "Maldives", "Marshall Islands",
            "Netherlands", "Northern Mariana Islands", "Paracel Islands", "Philippines", "Pitcairn Islands",
            "Seychelles", "Solomon Islands", "Spratly Islands", "Turks and Caicos Islands", "United Arab Emirates",
            "United States")
CLIMATE_WORDS = {"Af": "tropical rainforest", "Am": "tropical monsoon", "Aw": "tropical savanna", "BWh": "hot desert",
                 "BWk": "cold desert", "BSh": "hot semi-arid", "BSk": "cold semi-arid", "Cs": "Mediterranean",
                 "Cw": "subtropical dry-winter", "Cfa": "humid subtropical", "Cf": "temperate oceanic",
                 "Ds": "continental dry-summer", "Dw": "continental dry-winter", "Df": "humid continental",
                 "ET": "tundra", "EF": "ice cap"}
# pretrain_dataset.py thresholds: a part is kept when random.random() > threshold
T_REGION, T_TOWN, T_CLIMATE, T_LOCATION, T_DRIVE, T_COMPASS, T_MONTH = 0.4, 0.6, 0.6, 0.3, 0.7, 0.7, 0.7
# pretrain_dataset_yfcc.py (town and region always; no heading / month)
T_CLIMATE_YFCC, T_LOCATION_YFCC, T_DRIVE_YFCC = 0.55, 0.2, 0.8


def climate_phrase(k: str) -> str:
    for key in (k, k[:3], k[:2], k[:1]):
        if key in CLIMATE_WORDS:
            return f"a {CLIMATE_WORDS[key]} climate ({k})"
    return f"a {k} climate"


def compass(heading: float) -> str:
    """The reference's four directions: (315, 45] north, (45, 135] east, (135, 225] south, (225, 315] west."""
    h = heading % 360
    if h <= 45 or h > 315:
        return "north"
    if h <= 135:
        return "east"
    if h <= 225:
        return "south"
    return "west"


def display_country(name: str) -> str:
    if name == "United States Of America":
        name = "United States"
    return f"the {name}" if name in THE_LIST else name


def build_caption(meta: dict[str, str], rng: random.Random, style: str = "streetview", heading_offset: float = 0.0,
                  drive_side: str = "") -> str:
    """One caption for a metadata row (keys as the CSV columns; missing ones are skipped)."""
    country = display_country(meta.get("country_name") or meta.get("country") or "an unknown country")
    region, town, climate = meta.get("region", ""), meta.get("town", ""), meta.get("climate", "")
    side = meta.get("drive_side") or drive_side
    if style == "yfcc":
        region_s = f"in the region of {region} " if region else ""
        town_s = f"close to the town of {town} " if town else ""
        climate_s = f" This location has {climate_phrase(climate)}." if climate and rng.random() > T_CLIMATE_YFCC else ""
        location = f"A photo I took {town_s}{region_s}in {country}." \
            if rng.random() > T_LOCATION_YFCC or not climate_s else ""
        drive_s = f" In this location, people drive on the {side} side of the road." \
            if side and not climate_s and rng.random() > T_DRIVE_YFCC else ""
        return f"{location}{climate_s}{drive_s}".strip()
    region_s = f"in the region of {region} " if region and rng.random() > T_REGION else ""
    town_s = f"close to the town of {town} " if town and rng.random() > T_TOWN else ""
    climate_s = f" This location has {climate_phrase(climate)}." if climate and rng.random() > T_CLIMATE else ""
    location = f"A Street View photo {town_s}{region_s}in {country}." \
        if rng.random() > T_LOCATION or not climate_s else ""
    drive_s = f" In this location, people drive on the {side} side of the road." \
        if side and not climate_s and rng.random() > T_DRIVE else ""
    compass_s = ""
    if meta.get("heading", "") != "" and rng.random() > T_COMPASS:
        try:
            compass_s = f" This photo is facing {compass(float(meta['heading']) + heading_offset)}."
        except ValueError:
            compass_s = ""
    month_s = ""
    if meta.get("month", "") != "" and rng.random() > T_MONTH:
        try:
            month_s = f" The photo was taken in {MONTHS[int(float(meta['month'])) - 1]}."
        except (ValueError, IndexError):
            month_s = ""
    others = [climate_s, drive_s, compass_s, month_s]
    rng.shuffle(others)
    return "".join([location] + others).strip()
