"""NPS band sets (shipped as data in band_sets.json) and the gap to a target (pure).

A band set reads a score in the words of its source ("-15 to 0: missing follow-on
sales"); an admin picks the active set (server/api/benchmarks.py). The absolute
score matters less than the trend and the gap to the category, so a target and
a category or competitor figure sit next to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

DATA = Path(__file__).with_name("band_sets.json")


class Tone(StrEnum):
    """The colour family a band is drawn in (text always names the band)."""

    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"


@dataclass(frozen=True)
class Band:
    min: float | None  # a score at or above this is in the band; None: every score below
    label: str
    tone: Tone
    meaning: str


@dataclass(frozen=True)
class BandSet:
    id: str
    name: str
    source: str
    bands: tuple[Band, ...]  # best first, the last with min None

    def of(self, score: float | None) -> Band | None:
        """The band of `score`; None without a score (no answers)."""
        if score is None:
            return None
        for band in self.bands:
            if band.min is None or score >= band.min:
                return band
        raise ValueError(f"band set {self.id} has no band below {self.bands[-1].min}")


@dataclass(frozen=True)
class Shipped:
    default: str
    sets: dict[str, BandSet]


def parse(text: str) -> Shipped:
    """The band sets of a band_sets.json text; ValueError when a set is not ordered
    best first or does not end with the open band below the rest."""
    doc = json.loads(text)
    sets: dict[str, BandSet] = {}
    for s in doc["sets"]:
        bands = tuple(Band(b["min"], b["label"], Tone(b["tone"]), b["meaning"]) for b in s["bands"])
        floors = [b.min for b in bands[:-1] if b.min is not None]
        ordered = floors == sorted(floors, reverse=True) and len(floors) == len(bands) - 1
        if bands[-1].min is not None or not ordered:
            raise ValueError(f"band set {s['id']}: floors must fall, the last band open below")
        sets[s["id"]] = BandSet(s["id"], s["name"], s["source"], bands)
    if doc["default"] not in sets:
        raise ValueError(f"default band set {doc['default']!r} is not shipped")
    return Shipped(doc["default"], sets)


@cache
def shipped() -> Shipped:
    return parse(DATA.read_text(encoding="utf-8"))


def gap(score: float | None, other: float | None) -> float | None:
    """`score - other` in NPS points, rounded to one decimal; None when either is unknown."""
    if score is None or other is None:
        return None
    return round(score - other, 1)
