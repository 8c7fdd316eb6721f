"""bot.channels.bounded_json: JSON from outside parsed within bounds, and a webhook's signed fields read without a parse."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.bounded_json import MAX_DEPTH, JsonError, depth, loads, top_level_fields

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**18), 10**18) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=10) | st.sampled_from(["[", "]", "{", '"', "\\", '\\"[']),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=30,
)


def true_depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((true_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((true_depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(value=values)
def test_depth_is_exact_for_json_and_loads_agrees_with_the_standard_parser(value: Any) -> None:
    """Brackets inside strings never count; within bounds loads gives what json.loads gives."""
    text = json.dumps(value)
    assert depth(text) == true_depth(value)
    assert loads(text, max_bytes=1 << 20) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000, "[" * 5000 + "]" * 5000, '{"a":' * 40 + "1" + "}" * 40, '["x", ' + "[" * 33 + "]" * 33 + "]", "[" * 33],
)
def test_deep_nesting_is_refused_before_parsing(text: str) -> None:
    """Nesting beyond MAX_DEPTH (closed or not) is a JsonError, never a RecursionError."""
    with pytest.raises(JsonError, match="deeply"):
        loads(text, max_bytes=1 << 20)
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH, max_bytes=1 << 20) is not None


@pytest.mark.parametrize("number", ["9" * 20, "-" + "9" * 400, "1e400", "-1e400", "1E+99999", "NaN", "Infinity", "-Infinity"])
def test_numbers_float_cannot_take_are_refused(number: str) -> None:
    """Huge integers (OverflowError in float()), infinite floats and the NaN/Infinity constants."""
    with pytest.raises(JsonError, match="number|NaN"):
        loads('{"latitude": %s}' % number, max_bytes=10_000)
    assert loads('{"latitude": 9223372036854775807}', max_bytes=100) == {"latitude": 2**63 - 1}


def test_size_encoding_and_lone_surrogates() -> None:
    """Too large or not UTF-8: JsonError. A lone surrogate escape becomes U+FFFD; a pair stays one character."""
    with pytest.raises(JsonError, match="large"):
        loads(b"[" + b"1," * 600 + b"1]", max_bytes=1000)
    with pytest.raises(JsonError, match="UTF-8"):
        loads(b'{"a": "\xff"}', max_bytes=1000)
    mended = loads(r'{"a": "x\ud800", "\udfff": ["\ud83d\ude00"]}', max_bytes=1000)
    assert mended == {"a": "x\ufffd", "\ufffd": ["\U0001f600"]}
    json.dumps(mended).encode("utf-8")


def test_top_level_fields_reads_only_the_top_level() -> None:
    """Strings and brackets inside values never fool it; duplicates and non-objects give None."""
    body = json.dumps({"message": {"app_id": "inner", "text": '"app_id": "fake"'}, "app_id": "A1", "timestamp": 17})
    assert top_level_fields(body.encode(), ("app_id", "timestamp")) == {"app_id": "A1", "timestamp": 17}
    assert top_level_fields(b'{"app_id": {"x": 1}, "timestamp": "5"}', ("app_id", "timestamp")) == {"timestamp": "5"}
    for body_ in (b'{"app_id": "a", "app_id": "b"}', b"[]", b"\xff{", b"[" * 50, b'{"x": [' + b'{"app_id": 1},' * 17 + b"1]}"):
        assert top_level_fields(body_, ("app_id",)) is None, body_[:20]
    deep = b'{"app_id": "a", "x": ' + b"[" * 5000 + b"]" * 5000 + b', "timestamp": 5}'
    assert top_level_fields(deep, ("app_id", "timestamp")) == {"app_id": "a", "timestamp": 5}, "depth is loads()' business"
    tricky = b'{"\\"app_id": "fake", "text": "\\"app_id\\": \\"fake\\"", "app_id": "real"}'
    assert json.loads(tricky)["app_id"] == "real"
    assert top_level_fields(tricky, ("app_id",)) == {"app_id": "real"}, "quoted inside a key or a value: no key"
    assert top_level_fields(b'{"app_id": "a\\u0041"}', ("app_id",)) == {"app_id": "aA"}


@settings(max_examples=200, deadline=None)
@given(value=st.dictionaries(st.text(max_size=6), values, max_size=6), app_id=st.text(max_size=10), stamp=st.integers(0, 2**50))
def test_top_level_fields_agrees_with_a_full_parse(value: dict[str, Any], app_id: str, stamp: int) -> None:
    """For any object, the scan finds what json.loads finds at the top level."""
    value = {k: v for k, v in value.items() if k not in ("app_id", "timestamp")}
    body = json.dumps({**value, "app_id": app_id, "timestamp": str(stamp)}).encode()
    assert top_level_fields(body, ("app_id", "timestamp")) == {"app_id": app_id, "timestamp": str(stamp)}
