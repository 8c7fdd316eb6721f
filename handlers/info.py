"""Counselling information: groups of topics, a topic's short answer, its "read more" page."""

from __future__ import annotations

from content.pack import Topic
from handlers import payloads as p
from handlers.common import Outcome, Turn, nav
from handlers.menu import show_menu
from handlers.state import State, Step
from handlers.types import Button, Engaged, GroupTitle, Msg, Reply, Text, TopicPart, TopicText


def topic_button(topic_id: str) -> Button:
    """The button that opens a topic: its title, and the topic payload."""
    return Button(TopicText(topic_id, TopicPart.TITLE), p.Topic(topic_id).pack())


def groups(turn: Turn, *, lead: Msg | None = None) -> Outcome:
    buttons = [Button(GroupTitle(group), p.Group(group).pack()) for group in turn.ctx.pack.groups()]
    parts = (lead, Msg("info.title")) if lead else (Msg("info.title"),)
    return turn.answer(Reply(parts, nav(*buttons)), state=_at_menu(turn))


def group(turn: Turn, group_id: str) -> Outcome:
    topics = turn.ctx.pack.topics_in(group_id)
    if not topics:
        return show_menu(turn, Msg("input.stale_button"))
    buttons = [topic_button(topic.id) for topic in topics]
    back = [Button(Msg("nav.back"), p.Groups().pack())] if group_id != "livelihood" else []
    parts: tuple[Text, ...] = (GroupTitle(group_id), Msg("info.pick_topic"))
    return turn.answer(Reply(parts, nav(*buttons, *back)), state=_at_menu(turn))


def topic(turn: Turn, topic_id: str, *, lead: tuple[Text, ...] = ()) -> Outcome:
    found = turn.ctx.pack.topics.get(topic_id)
    if found is None:
        return show_menu(turn, Msg("input.stale_button"))
    parts = (*lead, TopicText(found.id, TopicPart.TITLE), TopicText(found.id, TopicPart.SUMMARY))
    extra = [Button(Msg("nav.read_more"), p.TopicMore(found.id).pack())] if found.vi.more else []
    return _topic_reply(turn, found, parts, extra)


def topic_more(turn: Turn, topic_id: str) -> Outcome:
    found = turn.ctx.pack.topics.get(topic_id)
    if found is None or not found.vi.more:
        return show_menu(turn, Msg("input.stale_button"))
    parts = (TopicText(found.id, TopicPart.TITLE), TopicText(found.id, TopicPart.MORE), TopicText(found.id, TopicPart.SOURCE))
    return _topic_reply(turn, found, parts, [])


def _topic_reply(turn: Turn, found: Topic, parts: tuple[Text, ...], extra: list[Button]) -> Outcome:
    related = [topic_button(other) for other in found.related if other in turn.ctx.pack.topics]
    back = Button(Msg("nav.back"), p.Group(found.group).pack())
    state = turn.state.moved(Step.TOPIC, topic=found.id) if turn.state else None
    # Reading about privacy is not counselling; every other topic counts towards "informed".
    effects = (Engaged("topic"),) if found.group != "privacy" else ()
    reply = Reply(parts, nav(*extra, *related, back), protect=found.sensitive)
    return turn.answer(reply, state=state, effects=effects)


def _at_menu(turn: Turn) -> State | None:
    return turn.state.moved(Step.MENU) if turn.state else None
