"""What people say, in themes: the device's reason codes and the phone comments, grouped
into a documented keyword taxonomy, with the sentiment of each comment. Pure: no I/O.

Why a taxonomy and not a learned topic model: the comments are short and few (a
fraction of detractors), so unsupervised topics (TF-IDF + NMF) would be unstable
from week to week and unnamed; a fixed list of themes, each with its words, gives
the same theme the same name every week, can be read and extended by an operator
(docs/server.md "Themes"), and needs no training data. A comment may touch several
themes; one that matches none is `other`, so no comment goes unseen.

Sentiment: VADER (vaderSentiment, MIT), a rule-based model for short informal
text whose lexicon ships inside its wheel; nothing is downloaded at run time.
Its compound score is in [-1, 1]; the authors' thresholds +-0.05 give the label.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from contract.nps import Category, Tally


class Theme(StrEnum):
    STAFF = "staff"
    WAITING = "waiting"
    MACHINE = "machine"
    PRICE = "price"
    CLEANLINESS = "cleanliness"
    PAYMENT = "payment"
    OTHER = "other"


LABELS: dict[str, str] = {
    Theme.STAFF: "Staff and service",
    Theme.WAITING: "Waiting time",
    Theme.MACHINE: "Machine faults",
    Theme.PRICE: "Price",
    Theme.CLEANLINESS: "Cleanliness",
    Theme.PAYMENT: "Payment",
    Theme.OTHER: "Other comments",
}
# A word or phrase of the comment, whole or with a common ending (SUFFIXES), puts it in
# the theme: "waited" is waiting, "cashier" is not "cash", "feel" is not "fee".
KEYWORDS: dict[Theme, tuple[str, ...]] = {
    Theme.STAFF: ("staff", "employee", "cashier", "attendant", "technician", "rude", "unfriendly",
                  "friendly", "helpful", "unhelpful", "nobody", "manager", "service desk",
                  "polite", "impolite", "ignored"),
    Theme.WAITING: ("wait", "queue", "line", "slow", "took ages", "forever", "minutes", "delay",
                    "hour", "late"),
    Theme.MACHINE: ("broken", "fault", "error", "jam", "jammed", "stuck", "crash", "screen",
                    "restart", "froze", "frozen", "out of order", "not working"),
    Theme.PRICE: ("price", "expensive", "cost", "cheap", "overpriced", "money", "fee"),
    Theme.CLEANLINESS: ("dirty", "clean", "cleanliness", "mess", "smell", "filthy"),
    Theme.PAYMENT: ("card", "pay", "payment", "cash", "receipt", "refund", "contactless"),
}  # fmt: skip
# The device reason codes of the shipped configs and the demo (nps_edge/story.py);
# any other code is a theme of its own, named by the code.
REASON_THEMES: dict[str, str] = {
    "staff": Theme.STAFF,
    "wait_time": Theme.WAITING,
    "machine_fault": Theme.MACHINE,
    "price": Theme.PRICE,
}
SUFFIXES = "(?:s|es|d|ed|ing|ly|y)?"
PATTERNS = {
    theme: re.compile(
        r"\b(?:" + "|".join(re.escape(w) for w in words) + ")" + SUFFIXES + r"\b", re.IGNORECASE
    )
    for theme, words in KEYWORDS.items()
}
NEGATIVE_BELOW = -0.05  # VADER's documented thresholds of its compound score
POSITIVE_ABOVE = 0.05
EXAMPLES = 3


def themes_of(text: str) -> list[str]:
    """The taxonomy themes a comment touches, in taxonomy order; [`other`] if none."""
    found = [str(theme) for theme, pattern in PATTERNS.items() if pattern.search(text)]
    return found or [str(Theme.OTHER)]


def theme_of_reason(reason: str) -> str:
    return REASON_THEMES.get(reason, reason)


def label_of(theme: str) -> str:
    return LABELS.get(theme, theme.replace("_", " ").capitalize())


@functools.cache
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()  # reads the lexicon from inside its package, once


def sentiment(text: str) -> float:
    """VADER's compound score of `text`, -1 (most negative) .. 1 (most positive)."""
    return float(_analyzer().polarity_scores(text)["compound"])


def sentiment_label(compound: float) -> str:
    if compound <= NEGATIVE_BELOW:
        return "negative"
    if compound >= POSITIVE_ABOVE:
        return "positive"
    return "neutral"


@dataclass(frozen=True)
class Comment:
    """A phone comment joined to its answer."""

    event_id: str
    site: str
    t: float
    category: str | None
    reason: str | None
    text: str
    sentiment: float


@dataclass(frozen=True)
class Period:
    """A slice of time with its per-reason tallies (from the rollups)."""

    key: str
    lo: float
    hi: float
    reasons: Mapping[str | None, Tally]


@dataclass
class ThemeFigures:
    theme: str
    tally: Tally = field(default_factory=Tally)
    from_reasons: int = 0
    comments: int = 0
    sentiments: list[float] = field(default_factory=list)
    examples: list[Comment] = field(default_factory=list)  # newest first
    trend: list[tuple[str, Tally]] = field(default_factory=list)

    @property
    def sentiment(self) -> float | None:
        return round(sum(self.sentiments) / len(self.sentiments), 3) if self.sentiments else None


_ONE: dict[str, Tally] = {
    Category.PROMOTER: Tally(1, 0, 0, 1),
    Category.PASSIVE: Tally(0, 1, 0, 1),
    Category.DETRACTOR: Tally(0, 0, 1, 1),
}


def _combine(
    reasons: Mapping[str | None, Tally], tagged: Sequence[tuple[Comment, list[str]]]
) -> dict[str, ThemeFigures]:
    """Themes of one slice. An answer counts once per theme: a comment adds its answer
    to a theme only when the answer's reason code did not already put it there.
    `tagged`: the slice's comments with their themes (`themes_of`), newest first."""
    out: dict[str, ThemeFigures] = defaultdict(lambda: ThemeFigures(""))
    for reason, tally in reasons.items():
        if reason is None or tally.n == 0:
            continue
        fig = out[theme_of_reason(reason)]
        fig.tally = fig.tally + Tally(tally.promoters, tally.passives, tally.detractors, tally.n)
        fig.from_reasons += tally.n
    for c, found in tagged:
        by_reason = theme_of_reason(c.reason) if c.reason else None
        for theme in found:
            fig = out[theme]
            fig.comments += 1
            fig.sentiments.append(c.sentiment)
            if len(fig.examples) < EXAMPLES:
                fig.examples.append(c)
            if theme != by_reason and c.category in _ONE:
                fig.tally = fig.tally + _ONE[c.category]
    for theme, fig in out.items():
        fig.theme = theme
    return out


def theme_figures(
    reasons: Mapping[str | None, Tally], comments: Sequence[Comment], periods: Sequence[Period]
) -> list[ThemeFigures]:
    """Every theme of the window (largest first: answers, then comments), each with its
    count and NPS per period (`periods`, oldest first) for its change over time."""
    # Each comment's themes once, not once per period: the keyword search is the cost
    # (13 slices of every comment of the window otherwise).
    tagged = [(c, themes_of(c.text)) for c in sorted(comments, key=lambda c: c.t, reverse=True)]
    themes = _combine(reasons, tagged)
    for p in periods:
        inside = [(c, found) for c, found in tagged if p.lo <= c.t < p.hi]
        slice_ = _combine(p.reasons, inside)
        for theme, fig in themes.items():
            fig.trend.append((p.key, slice_[theme].tally if theme in slice_ else Tally()))
    return sorted(themes.values(), key=lambda f: (-f.tally.n, -f.comments, f.theme))
