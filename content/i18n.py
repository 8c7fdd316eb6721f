"""Interface strings: gettext catalogs (Babel .po files), Vietnamese first, English second.

Message ids are stable keys ("menu.title"); each locale's catalog holds the text. A locale may
have several catalog files (``antam.po`` for the conversation, ``reports.po``, ``staff.po``…);
they are read together and a key may live in only one of them. Installing the package compiles
each .po into a .mo (setup.py); a compiled catalog at least as new as its source is read,
otherwise the .po itself (a working copy, or an edited catalog).
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from content.pack import LOCALES, ContentError

LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "antam"
_FORMATTER = string.Formatter()


def placeholders(text: str) -> set[str]:
    """Return the names of the {placeholders} in a message."""
    return {name for _, name, _, _ in _FORMATTER.parse(text) if name}


class _Params(dict[str, object]):
    def __missing__(self, key: str) -> str:
        # A missing parameter shows as itself instead of breaking a reply to a person.
        return "{" + key + "}"


@dataclass(frozen=True)
class Catalogs:
    messages: Mapping[str, Mapping[str, str]]

    def text(self, locale: str, key: str, params: Mapping[str, object] | None = None) -> str:
        """Return the message ``key`` in ``locale`` (falling back to Vietnamese)."""
        template = self.messages.get(locale, {}).get(key) or self.messages["vi"].get(key)
        if template is None:
            raise KeyError(f"no message '{key}' in the catalogs")
        return template.format_map(_Params(params or {}))

    def keys(self) -> set[str]:
        return set(self.messages["vi"])


def _read_catalog(po_path: Path, locale: str) -> Catalog:
    mo_path = po_path.with_suffix(".mo")
    if mo_path.exists() and (not po_path.exists() or mo_path.stat().st_mtime >= po_path.stat().st_mtime):
        with mo_path.open("rb") as handle:
            return read_mo(handle)
    with po_path.open("rb") as handle:
        return read_po(handle, locale=locale)


def load_catalogs(locale_dir: Path = LOCALE_DIR) -> Catalogs:
    """Read every locale's catalog; raise ContentError listing missing or broken messages."""
    problems: list[str] = []
    messages: dict[str, dict[str, str]] = {}
    for locale in LOCALES:
        folder = locale_dir / locale / "LC_MESSAGES"
        main = folder / f"{DOMAIN}.po"
        # A catalog may be present as its source (.po), compiled (.mo) or both.
        others = {path.with_suffix(".po") for path in (*folder.glob("*.po"), *folder.glob("*.mo"))} - {main}
        paths = [main, *sorted(others)]
        table: dict[str, str] = {}
        found_in: dict[str, str] = {}
        for path in paths:
            try:
                catalog = _read_catalog(path, locale)
            except (OSError, ValueError) as exc:
                problems.append(f"locale/{locale}: cannot read {path.name}: {exc}")
                continue
            for message in catalog:
                if not message.id or not isinstance(message.id, str):
                    continue
                if not isinstance(message.string, str) or not message.string.strip():
                    problems.append(f"locale/{locale}: '{message.id}' has no translation")
                    continue
                if message.fuzzy:
                    problems.append(f"locale/{locale}: '{message.id}' is marked fuzzy")
                if message.id in found_in:
                    problems.append(
                        f"locale/{locale}: '{message.id}' is in both {found_in[message.id]} and {path.name}"
                    )
                    continue
                found_in[message.id] = path.name
                table[message.id] = message.string
        messages[locale] = table
    if "vi" in messages:
        reference = messages["vi"]
        for locale, table in messages.items():
            for key in reference.keys() - table.keys():
                problems.append(f"locale/{locale}: missing '{key}'")
            for key in table.keys() - reference.keys():
                problems.append(f"locale/{locale}: '{key}' is not in the Vietnamese catalog")
            for key in reference.keys() & table.keys():
                if placeholders(reference[key]) != placeholders(table[key]):
                    problems.append(f"locale/{locale}: '{key}' has other placeholders than in Vietnamese")
    if problems:
        raise ContentError(problems)
    return Catalogs(messages)
