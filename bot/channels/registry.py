"""The channel registry: the one place that lists An Tâm's channels.

The server starts the channels configured here, in this order; metrics labels, the log
filter's safe words, the staff pages' "reach by channel" rows and the report columns take the
names from here. Adding a channel is adding one entry (and its module): see
docs/architecture.md, "Adding a channel". A test (tests/channels/test_registry.py) fails when a
list of channel names appears anywhere else in the code.

Adapters are imported only when built, so the registry is cheap to import from anywhere in
``bot`` (metrics, logs) without pulling in python-telegram-bot.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.config import Settings
from handlers.render import Capabilities, Unprompted

NEUTRAL_EXIT_URL = "https://www.google.com/"

if TYPE_CHECKING:
    from bot.channels.base import Channel
    from bot.runtime import Runtime


@dataclass(frozen=True)
class ChannelSpec:
    """One channel: its name, what it can do, when it runs, and where its adapter is."""

    name: str
    capabilities: Capabilities
    # Whether the settings configure it for the server (the console never runs in the server).
    configured: Callable[[Settings], bool]
    adapter: str  # "module:function", called with (runtime, options) to build the adapter
    # Shown on the staff pages even when nothing was counted for it (the console only when counted).
    shown: bool = True

    def build(self, runtime: Runtime, options: ServerOptions) -> Channel:
        module, _, name = self.adapter.partition(":")
        factory: Callable[[Runtime, ServerOptions], Channel] = getattr(importlib.import_module(module), name)
        return factory(runtime, options)


@dataclass(frozen=True)
class ServerOptions:
    """What the server hands every channel it builds, beyond the runtime and its settings."""

    exit_url: str = NEUTRAL_EXIT_URL  # where the web chat's quick exit leaves to


TELEGRAM = ChannelSpec(
    name="telegram",
    capabilities=Capabilities(
        max_text=4096,
        max_buttons=None,  # an inline keyboard holds 100: more than any menu
        max_label=None,
        deletes=True,
        delete_window=dt.timedelta(hours=48),
        protect_content=True,
        unprompted=Unprompted.ALWAYS,
        sends_per_second=30.0,
        sends_per_second_per_person=1.0,
    ),
    configured=lambda settings: settings.telegram_bot_token is not None,
    adapter="bot.channels.telegram:build",
)
ZALO = ChannelSpec(
    name="zalo",
    # Text: 2,000 characters (partners' documentation of the consultation message). Buttons: 5
    # per message (Zalo's own PHP SDK refuses a sixth). Titles: 100 characters (third-party
    # SDKs). Zalo counts free replies per message the person sends: "OA sẽ được phép sử dụng 8
    # tin phản hồi (miễn phí) trong vòng 48h kể từ thời điểm người quan tâm gửi tin đến OA …
    # Hạn mức này sẽ được thiết lập lại mỗi khi Người dùng gửi tin mới cho OA"; the 9th, or one
    # after 48 h, is a paid proactive message (Zalo OA's help centre, "Các loại tin của Zalo
    # Official Account (OA)", zalooa.freshdesk.com/support/solutions/articles/64000261136).
    # The outbox keeps the messages the bot starts within both (``started_per_message``).
    capabilities=Capabilities(
        max_text=2000,
        max_buttons=5,
        max_label=100,
        max_messages=8,
        deletes=False,
        delete_by_hand="quickexit.zalo_manual",
        unprompted=Unprompted.IN_WINDOW,
        reply_window=dt.timedelta(hours=48),
        started_per_message=8,
        sends_per_second=10.0,
        sends_per_second_per_person=1.0,
    ),
    configured=lambda settings: bool(settings.zalo_app_id) and settings.zalo_oa_secret_key is not None,
    adapter="bot.channels.zalo:build",
)
WEB = ChannelSpec(
    name="web",
    # The page clears itself and leaves for a neutral site; it holds nothing once closed. Its
    # header always has "Thoát nhanh", and a reply shows five buttons with "Xem thêm" for the rest.
    capabilities=Capabilities(
        max_text=4096, deletes=True, unprompted=Unprompted.WHILE_OPEN, exit_always_shown=True, buttons_shown=5
    ),
    configured=lambda settings: True,
    adapter="bot.channels.webchat:build",
)
CONSOLE = ChannelSpec(
    name="console",
    capabilities=Capabilities(max_text=100_000, deletes=True, unprompted=Unprompted.NEVER),
    configured=lambda settings: False,  # `antam chat`, never the server
    adapter="bot.channels.console:build",
    shown=False,
)

CHANNELS: tuple[ChannelSpec, ...] = (TELEGRAM, ZALO, WEB, CONSOLE)
BY_NAME = {spec.name: spec for spec in CHANNELS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
SHOWN: tuple[str, ...] = tuple(spec.name for spec in CHANNELS if spec.shown)


def capabilities(name: str) -> Capabilities:
    """The capabilities of channel ``name``."""
    return BY_NAME[name].capabilities
