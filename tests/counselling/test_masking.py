"""What a counsellor sees of a person's message: numbers, accounts, links and e-mails hidden."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from content.masking import EMAIL_MASK, HANDLE_MASK, LINK_MASK, PHONE_MASK, mask


@pytest.mark.parametrize(
    "typed, shown",
    [
        ("so em la 0912345678 nhe", f"so em la {PHONE_MASK} nhe"),
        ("goi em 091 234 5678", f"goi em {PHONE_MASK}"),
        ("sđt +84 912.345.678", f"sđt {PHONE_MASK}"),
        ("cccd 001203004567", f"cccd {PHONE_MASK}"),
        ("zalo em @hoa.nguyen99", f"zalo em {HANDLE_MASK}"),
        ("fb: facebook.com/hoa.nguyen", f"fb: {LINK_MASK}"),
        ("xem https://t.me/abc?x=1 nha", f"xem {LINK_MASK} nha"),
        ("link zalo.me/0912345678", f"link {LINK_MASK}"),
        ("mail hoa.n@gmail.com", f"mail {EMAIL_MASK}"),
    ],
)
def test_what_would_name_a_person_is_hidden(typed: str, shown: str) -> None:
    result = mask(typed)
    assert result.text == shown and result.masked


@pytest.mark.parametrize(
    "typed",
    [
        "em 19 tuổi, ở Bình Lư",
        "bị rách bao 2 ngày rồi, 500.000 đồng có đủ không",
        "gọi 113 hay 111 được không",
        "hẹn 10:30 ngày 12/03/2026",
        "ok.vậy em hiểu rồi",
        "10.000.000 đồng nợ",
    ],
)
def test_everyday_words_and_numbers_stay(typed: str) -> None:
    result = mask(typed)
    assert result.text == typed and not result.masked


@given(
    st.lists(
        st.one_of(
            st.text(alphabet="abc đêơ ", min_size=0, max_size=12),
            st.from_regex(r"0[0-9]{9}", fullmatch=True),
            st.from_regex(r"\+84 ?[0-9]{3}[ .-]?[0-9]{3}[ .-]?[0-9]{3}", fullmatch=True),
            st.from_regex(r"@[a-z][a-z0-9_.]{2,12}", fullmatch=True),
            st.from_regex(r"https?://[a-z]{2,8}\.(com|vn|me)/[a-z0-9]{0,8}", fullmatch=True),
        ),
        max_size=6,
    ).map(" ".join)
)
def test_no_long_number_account_or_link_survives(typed: str) -> None:
    shown = mask(typed).text
    without_masks = shown.replace(PHONE_MASK, " ").replace(HANDLE_MASK, " ").replace(LINK_MASK, " ")
    assert not re.search(r"(?:\d[\s.\-]*){9}", without_masks), shown
    assert not re.search(r"(?<![\w@])@[\w.]{2,}", without_masks), shown
    assert "http" not in without_masks, shown
