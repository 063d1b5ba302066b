"""The span patterns and word lists the claims check reads assistant text with."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gem_graph.checks import spans
from gem_graph.checks.spans import wordset

_NUM = r"\d+(?:,\d{3})*(?:\.\d+)?"
_WORDNUM = "|".join(w for w in spans.NUMBER_WORDS if w not in ("zero", "one"))
_SCALE = r"(?:\s?(k|bn|million|billion|thousand)\b)?"
_MONEY_BEFORE = re.compile(
    rf"(?<![\w.,])([-−])?\s?(?:US\$|\$|€|£|¥)\s?({_NUM}){_SCALE}", re.IGNORECASE
)
_MONEY_AFTER = re.compile(
    rf"(?<![\w.,\-/:#])({_NUM}){_SCALE}\s?(USD|EUR|GBP|CHF|dollars?|euros?|pounds?|bucks)\b",
    re.IGNORECASE,
)
_PERCENT = re.compile(rf"(?<![\w.,\-/:#])({_NUM})\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)
_TIMES_SIGN = re.compile(rf"(?<![\w.,\-/:#$€£])({_NUM}|{_WORDNUM}|one)\s?(?:×|x(?=\s))", re.I)
_COUNTED = re.compile(rf"(?<![\w.,\-/:#$€£¥+])({_NUM}|{_WORDNUM})\s+([a-z]+)(?:\s+([a-z]+))?\b")
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d().\- ]{5,}\d(?![\w])")
_QUOTE = re.compile(r'(?<!\w)"(?=\S)([^"\n]{1,200})(?<=\S)"(?!\w)|“([^”\n]{1,200})”')
_SHORT_ID = re.compile(
    r"\b(?:id|code|number|no\.|ref|reference|ticket|booking|confirmation|room|seat|gate|"
    r"table|slot|case|locker|pin|row|bay|platform|terminal)\s?(?:#|:)?\s?"
    r"(#?[A-Za-z]?\d{1,4}[A-Za-z]?)(?![\w\-])",
    re.IGNORECASE,
)
_HASH_ID = re.compile(r"(?<![\w#])#\d{1,2}(?!\w)")
_UNIT_WORDS = wordset(
    "minute minutes min mins hour hours hr hrs day days night nights week weeks "
    "month months year years second seconds km kg g mg lb lbs oz cm mm ml miles "
    "mile meters metres meter metre feet foot inches inch liters litres liter litre "
    "gb mb tb"
)
_NOT_NOUNS = wordset(
    "is was has does this its his plus less yes thus us as always across unless "
    "perhaps minus bonus status series news was has its whereas besides towards "
    "afterwards"
)
_NOT_ADJECTIVES = wordset(
    "of in on at to for and or but is are was were be been has have had will would "
    "can could should may might must the a an per than from by with into onto over "
    "under as if so that this these those it its their our your my his her we you "
    "they i times x out off up down"
)
_QUOTE_CUES = re.compile(
    r"\b(?:say|says|said|reply|replies|type|enter|click|press|tap|select|choose|open|pick|"
    r"write|answer|respond|go to|look for|find|search for|labell?ed|button|tab|menu|option|"
    r"field|link|subject)\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
_FREE_QUOTES = frozenset({"yes", "no", "ok", "okay", "y", "n", "confirm", "cancel", "stop"})
_BOUND_CUE = re.compile(
    r"\b(?:at least|at most|more than|less than|over|under|below|above|up to|no more than|"
    r"minimum(?: of)?|maximum(?: of)?)\s*$",
    re.IGNORECASE,
)
_APPROX_CUE = re.compile(r"(?:\b(?:about|around|approximately|roughly|nearly|almost)|~)\s*$", re.I)
_HONORIFIC = re.compile(r"^(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sir|Dame)\.?$")
_CAP_RUN = re.compile(
    r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\.?\s+)?[A-Z][\w'’\-]*"
    r"(?:\s+(?:(?:of|the|and|de|du|van|von|da|la|le|del|&)\s+)?[A-Z0-9][\w'’\-]*)*"
)
_COMMON_CAPS = wordset(
    "i i'm i've i'll i'd ok okay yes no hi hello hey dear thanks thank please sorry "
    "sure great perfect done good welcome you your we our the a an and or but so if "
    "to for on in at by of as is it this that these those there here then also mr "
    "mrs ms dr prof"
)
_GENERIC_KEY_WORDS = wordset(
    "at on date time datetime amount value id ids name names num number is the of "
    "in new current usd eur gbp cents code type status"
)
_KEY_WORD = re.compile(r"[a-z]+")
_OFFER = re.compile(
    r"\b(?:would you like|do you want|shall i|should i|can i|may i|want me to|how about|"
    r"would you prefer|would it help)\b",
    re.IGNORECASE,
)
_CATEGORY_KEYS = wordset(
    "status state type kind category categories specialty speciality level tier method mode "
    "reason role department genre tag tags label"
)
_MONEY_KEY_WORDS = wordset(
    "amount price total balance fee fees cost refund charge paid fine fines subtotal tax "
    "credit debit payment limit deposit rent due owed"
)


@dataclass
class _Span:
    """One factual span of an assistant text."""

    kind: str  # amount, percent, quantity, date, time, id, phone, quote, name
    start: int
    end: int
    text: str
    number: float = 0.0
    decimals: int = 0
    date_span: spans.DateSpan | None = None
    minutes: int = 0


def _ungrounded(span: _Span, nearest: str) -> str:
    return (
        f"the assistant states {span.text!r} ({span.kind}), which no earlier tool output, "
        "user turn, system prompt or policy supports, nor a sum, difference, product, ratio, "
        f"percentage, list count or date arithmetic of supported values; nearest evidence "
        f"searched: {nearest}; state only what the tools returned or the user said"
    )
