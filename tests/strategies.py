"""Hypothesis strategies for inbound events, kept in one place."""

from __future__ import annotations

from hypothesis import strategies as st

from handlers.types import Inbound, Location

KNOWN_PAYLOADS = [
    "c:accept", "c:decline", "c:more", "m", "i", "s", "e", "p", "x", "p:erase", "p:erase:yes",
    "p:erase:no", "l:en", "l:vi", "g:hiv_sti", "g:safety", "g:livelihood", "t:pep", "t:hiv_testing",
    "tm:pep", "tm:privacy", "en|m", "vi|t:prep", "en|c:accept",
]
PHRASES = [
    "xóa dữ liệu", "có", "không", "yes", "menu", "chào", "xn hiv o dau", "muốn chết", "/start",
    "/xoa", "/thoat", "/menu", "/trogiup", "bị thủng bao", "cứu với", "tìm việc làm", "thoát nhanh",
]

texts = st.one_of(
    st.text(max_size=300),
    st.sampled_from(PHRASES),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cs", "So", "Zs", "Mn"]), max_size=50),
    st.builds(lambda n: "a" * n, st.integers(min_value=4000, max_value=12000)),
)
payloads = st.one_of(st.sampled_from(KNOWN_PAYLOADS), st.text(max_size=100))
locations = st.builds(
    Location,
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)


@st.composite
def inbound_events(draw: st.DrawFn, user: str = "prop") -> Inbound:
    kind = draw(st.sampled_from(["text", "text", "payload", "payload", "location"]))
    hint = draw(st.sampled_from([None, "vi", "en", "en-US", "fr", ""]))
    if kind == "text":
        return Inbound("test", user, text=draw(texts), locale_hint=hint)
    if kind == "payload":
        return Inbound("test", user, payload=draw(payloads), locale_hint=hint)
    return Inbound("test", user, location=draw(locations), locale_hint=hint)
