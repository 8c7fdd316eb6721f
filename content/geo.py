"""Provinces and communes of Vietnam's 2025 two-level administration, found by typed name.

The data comes from the `vietnam-provinces` package (34 provinces, 3,321 communes). A person
may type "Bình Lư", "binh lu", "xa binh lu", "Bình Lư Lai Châu" or "binh lư" with a small
typo; names shared by several communes are narrowed by a province named in the same text,
or returned as several candidates to choose from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache

from rapidfuzz import fuzz, process
from vietnam_provinces import Province, Ward

from content.intents import strip_diacritics

# Leading words that are not the place's name: "em ở xã Bình Lư", "tại phường Thành Nam".
_LEADING = tuple(
    f"{phrase} "
    for phrase in (
        "toi dang o", "em dang o", "minh dang o", "toi o", "em o", "minh o", "dang o", "o", "tai",
        "xa", "phuong", "dac khu", "thi tran", "p", "x",
    )
)
# Accept a fuzzy match only when it is this close (0–100), so unrelated words are not places.
FUZZY_CUTOFF = 88


@dataclass(frozen=True)
class Commune:
    code: int
    name: str  # "Xã Bình Lư"
    province_code: int
    province_name: str  # "Lai Châu"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.province_name})"


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", strip_diacritics(text)).split())


def _bare(text: str) -> str:
    """A name without its kind words: "Xã Bình Lư" → "binh lu", "Phường Thành Nam" → "thanh nam"."""
    words = _key(text).split()
    lowered = text.lower()
    if lowered.startswith(("xã ", "phường ", "đặc khu ", "thị trấn ")):
        words = words[2:] if lowered.startswith(("đặc khu ", "thị trấn ")) else words[1:]
    return " ".join(words)


def _strip_leading(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _LEADING:
            if key.startswith(prefix) and len(key) > len(prefix):
                key, changed = key[len(prefix) :], True
    return key.strip()


def _province_bare(name: str) -> str:
    key = _key(name)
    return key[len("thanh pho ") :] if key.startswith("thanh pho ") else key


class CommuneIndex:
    """Every commune, searchable by typed name."""

    def __init__(self) -> None:
        provinces = {int(p.code): p.name.removeprefix("Thành phố ") for p in Province.iter_all()}
        self.provinces = provinces
        self.by_code: dict[int, Commune] = {}
        self._by_bare: dict[str, list[Commune]] = {}
        for unit in Ward.iter_all():
            commune = Commune(int(unit.code), unit.name, int(unit.province_code), provinces[int(unit.province_code)])
            self.by_code[commune.code] = commune
            self._by_bare.setdefault(_bare(unit.name), []).append(commune)
        self._bare_names = list(self._by_bare)
        self._province_keys = {_province_bare(name): code for code, name in provinces.items()}

    def province_named(self, text: str) -> int | None:
        """The province the whole text names ("Hải Phòng", "tinh lai chau"), if any."""
        key = _strip_leading(_key(text))
        for prefix in ("tinh ", "thanh pho ", "tp "):
            key = key.removeprefix(prefix)
        return self._province_keys.get(key)

    def get(self, code: int) -> Commune | None:
        return self.by_code.get(code)

    def _split_province(self, key: str) -> tuple[str, int | None]:
        """Find a province named at the end of the text, and return the rest."""
        for province_key, code in sorted(self._province_keys.items(), key=lambda kv: -len(kv[0])):
            if key == province_key:
                return "", code
            if key.endswith(" " + province_key):
                return key[: -len(province_key) - 1].strip(), code
        return key, None

    def search(self, text: str, *, limit: int = 6, fuzzy: bool = True) -> list[Commune]:
        """Return the communes the text most likely names (empty: none).

        Without ``fuzzy`` only an exact name (diacritics aside) counts: that is for text the
        person did not type as an answer to "which commune?".
        """
        key = _key(text)
        key, province = self._split_province(key)
        cleaned = _strip_leading(key)
        if not cleaned:
            return []
        found = list(self._by_bare.get(cleaned) or [])
        if not found and fuzzy:
            matches = process.extract(cleaned, self._bare_names, scorer=fuzz.ratio, limit=limit, score_cutoff=FUZZY_CUTOFF)
            best = matches[0][1] if matches else 0
            for name, score, _ in matches:
                if score >= best - 3:
                    found.extend(self._by_bare[name])
        if province is not None:
            found = [c for c in found if c.province_code == province]
        return sorted(found, key=lambda c: (c.province_name, c.name))[:limit]


@cache
def commune_index() -> CommuneIndex:
    return CommuneIndex()


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points (haversine)."""
    r = 6371.0088
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))
