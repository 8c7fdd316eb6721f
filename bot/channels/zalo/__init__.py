"""The Zalo Official Account channel: ``adapter`` (webhook and events), ``api`` (Open API), ``tokens``."""

from bot.channels.zalo.adapter import WEBHOOK_PATH, ZaloChannel, build, to_inbound
from bot.channels.zalo.api import ZaloAPI, outgoing
from bot.channels.zalo.tokens import ZaloTokens, app_secret_of

__all__ = ["WEBHOOK_PATH", "ZaloAPI", "ZaloChannel", "ZaloTokens", "app_secret_of", "build", "outgoing", "to_inbound"]
