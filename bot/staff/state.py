"""The staff app's shared resources, each under its own typed key on the staff sub-application."""

from __future__ import annotations

from aiohttp import web

from bot.bootstrap import Services
from bot.counselling import Desk
from bot.staff.passwords import Passwords
from bot.staff.sessions import AddressThrottle

SERVICES = web.AppKey("staff.services", Services)
PASSWORDS = web.AppKey("staff.passwords", Passwords)
THROTTLE = web.AppKey("staff.throttle", AddressThrottle)
# The peer educators' pages, limited apart from logins so that neither uses up the other.
PEER_THROTTLE = web.AppKey("staff.peer_throttle", AddressThrottle)
# The counsellor chat's desk of this worker (bot/counselling.py).
DESK = web.AppKey("staff.counselling_desk", Desk)
