"""The registry is the one list of channels, and capabilities are what the renderer fits replies to."""

from __future__ import annotations

import ast
from pathlib import Path

from bot.bootstrap import Services
from bot.channels import registry
from bot.channels.registry import TELEGRAM, WEB, ZALO
from bot.logs import SAFE_WORDS
from bot.metrics import channel_label
from handlers.render import Capabilities, RenderedButton, RenderedReply, split_text
from handlers.types import ReplyKind

ROOT = Path(__file__).resolve().parents[2]
CODE = ("bot", "handlers", "content", "storage", "referrals")


def listed_channel_names(path: Path) -> list[int]:
    """Lines of ``path`` holding a tuple, list or set literal with two channel names or more."""
    names = set(registry.NAMES)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if len(words & names) >= 2:
                found.append(node.lineno)
    return found


def test_no_list_of_channel_names_outside_the_registry() -> None:
    """Metrics, logs, pages and reports take channel names from the registry, nowhere else."""
    mine = ROOT / "bot" / "channels" / "registry.py"
    offending = {
        str(path.relative_to(ROOT)): lines
        for package in CODE
        for path in (ROOT / package).rglob("*.py")
        if path != mine and (lines := listed_channel_names(path))
    }
    assert offending == {}


def test_the_check_finds_a_list() -> None:
    """The grep above is not vacuous: it finds the registry's own names written as a tuple."""
    source = ROOT / "tests" / "channels" / "_sample.py"
    source.write_text(f"CHANNELS = {registry.NAMES[:2]!r}\n", encoding="utf-8")
    try:
        assert listed_channel_names(source) == [1]
    finally:
        source.unlink()


def test_metrics_and_logs_read_the_registry() -> None:
    """Every registered name is a metric label and a word the log filter lets through."""
    for name in registry.NAMES:
        assert channel_label(name) == name and name in SAFE_WORDS
    assert channel_label("messenger-of-the-future") == "other"


def test_names_are_unique_and_the_console_is_not_served() -> None:
    assert len(set(registry.NAMES)) == len(registry.CHANNELS)
    assert "console" not in registry.SHOWN


def test_long_texts_split_at_paragraphs(services: Services) -> None:
    """Texts over a channel's limit are cut at paragraph boundaries, nothing lost."""
    text = "\n\n".join(f"Đoạn {i}: " + "chữ " * 150 for i in range(12))
    for spec in (TELEGRAM, ZALO):
        pieces = services.renderer.fit([RenderedReply(text)], spec.capabilities)
        limit = spec.capabilities.max_text
        assert len(pieces) > 1 and all(len(p.text) <= limit for p in pieces)
        assert all(p.text.rstrip().endswith("chữ") for p in pieces), "every piece ends where a paragraph ends"
        assert all(p.text.startswith("Đoạn") for p in pieces), "and the next begins with one"
        assert " ".join(" ".join(p.text for p in pieces).split()) == " ".join(text.split())
    assert split_text("a" * 25, 10) == ["a" * 10, "a" * 10, "a" * 5], "a word longer than the limit is cut"


def test_menus_are_paged_to_the_button_limit(services: Services) -> None:
    """Seven buttons on a five-button channel come as 4 + 3; labels are cut to the channel's length."""
    buttons = tuple(RenderedButton(f"Mục {i}" + "x" * (200 if i == 0 else 0), f"p{i}") for i in range(7))
    fitted = services.renderer.fit([RenderedReply("Chọn:", buttons)], ZALO.capabilities)
    assert [len(r.buttons) for r in fitted] == [4, 3] and fitted[0].text == "Chọn:"
    assert len(fitted[0].buttons[0].label) == 100 and [b.payload for r in fitted for b in r.buttons] == [
        f"p{i}" for i in range(7)
    ]
    (whole,) = services.renderer.fit([RenderedReply("Chọn:", buttons)], TELEGRAM.capabilities)
    assert len(whole.buttons) == 7


def test_quick_exit_says_what_the_channel_can_do(services: Services) -> None:
    """Where the channel deletes, the neutral line alone; where it cannot, how to delete by hand."""
    catalogs = services.renderer.catalogs
    for locale in ("vi", "en"):
        line = RenderedReply(catalogs.text(locale, "quickexit.neutral"), kind=ReplyKind.QUICK_EXIT, locale=locale)
        for spec in registry.CHANNELS:
            (fitted,) = services.renderer.fit([line], spec.capabilities)
            if spec.capabilities.deletes:
                assert fitted.text == line.text, spec.name
            else:
                manual = catalogs.text(locale, spec.capabilities.delete_by_hand or "")
                assert fitted.text == f"{line.text}\n\n{manual}", spec.name
    assert not ZALO.capabilities.deletes and TELEGRAM.capabilities.deletes and WEB.capabilities.deletes


def test_replies_per_event_are_bounded(services: Services) -> None:
    """A channel with a quota of replies per person message never gets more than it allows."""
    capped = Capabilities(max_text=10, max_messages=3)
    fitted = services.renderer.fit([RenderedReply("một hai ba bốn năm sáu bảy tám")], capped)
    assert len(fitted) == 3
