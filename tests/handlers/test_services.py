"""Communes by typed name, the services directory, and the services conversation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from content.geo import commune_index, distance_km
from content.i18n import load_catalogs
from content.pack import ContentPack, Service, ServiceTexts
from handlers.common import Context
from handlers.engine import respond
from handlers.render import Renderer
from handlers.state import State, Step
from handlers.types import Inbound, Location

BINH_LU, NAM_THANH_MIEN, THANH_NAM = 3390, 11284, 13699


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("Bình Lư", BINH_LU),
        ("binh lu", BINH_LU),
        ("xã bình lư", BINH_LU),
        ("em ở xa binh lu", BINH_LU),
        ("Bình Lư, Lai Châu", BINH_LU),
        ("binh luu", BINH_LU),
        ("nam thanh mien", NAM_THANH_MIEN),
        ("Nam Thanh Miện Hải Phòng", NAM_THANH_MIEN),
        ("P. Thành Nam", THANH_NAM),
        ("phuong thanh nam", THANH_NAM),
    ],
)
def test_commune_found_by_typed_name(typed: str, code: int) -> None:
    """A commune is found with or without diacritics, kind words, province or a small typo."""
    assert [c.code for c in commune_index().search(typed)] == [code]


def test_shared_names_are_narrowed_by_province() -> None:
    """A name several communes share gives candidates; adding the province picks one."""
    index = commune_index()
    several = index.search("tân phú")
    assert len(several) > 1 and {c.name for c in several} >= {"Xã Tân Phú"}
    (only,) = index.search("tan phu dong thap")
    assert only.province_name == "Đồng Tháp"


@pytest.mark.parametrize("typed", ["giá vàng hôm nay", "xét nghiệm hiv", "ok", "", "xã", "hải phòng"])
def test_non_places_are_not_communes(typed: str) -> None:
    """Ordinary text and bare province names are not taken for a commune."""
    assert commune_index().search(typed) == []


def test_exact_search_ignores_typos() -> None:
    """Without fuzzy matching only an exact name counts (for text not typed as an answer)."""
    assert commune_index().search("binh luu", fuzzy=False) == []
    assert [c.code for c in commune_index().search("binh lu", fuzzy=False)] == [BINH_LU]


def test_the_index_covers_the_2025_map() -> None:
    """All 34 provinces and 3,321 communes of the 2025 two-level administration are known."""
    index = commune_index()
    assert len(index.provinces) == 34 and len(index.by_code) == 3321


def test_distance() -> None:
    """Great-circle distances are right to within a kilometre (Hà Nội – Hồ Chí Minh City ≈ 1,140 km)."""
    assert distance_km(21.0278, 105.8342, 10.7769, 106.7009) == pytest.approx(1139, abs=10)
    assert distance_km(22.0, 103.0, 22.0, 103.0) == 0


def test_directory_covers_the_four_localities(ctx: Context) -> None:
    """Each plan locality has its health station, and its province its CDC, legal aid and bank."""
    pack = ctx.pack
    for commune in (BINH_LU, NAM_THANH_MIEN, THANH_NAM, 30085):
        province = commune_index().by_code[commune].province_code
        kinds = {kind for s in pack.services_for(commune, province) for kind in s.types}
        assert {"health_station", "hiv_testing", "arv", "prep", "methadone", "employment", "vocational", "loans",
                "legal_aid", "womens_union"} <= kinds, commune


def test_unverified_details_are_never_shown_as_confirmed(ctx: Context, renderer: Renderer) -> None:
    """Unverified services are labelled; an unverified phone number is never shown to a person."""
    service = Service(
        id="test_clinic", types=["hiv_testing"], province=12, commune=BINH_LU, coverage="commune",
        phone="0912 345 678", verified=False, source="test",
        vi=ServiceTexts(name="Phòng khám thử", address="Bản A"), en=ServiceTexts(name="Test clinic", address="Village A"),
    )
    pack = ContentPack(topics=ctx.pack.topics, hotlines=ctx.pack.hotlines, services=(service,))
    local = Renderer(load_catalogs(), pack, commune_index())
    text = local.render(respond(State(), Inbound("t", "u", payload=f"w:{BINH_LU}"), replace(ctx, pack=pack)))[0].text
    assert "Phòng khám thử" in text and "Bản A" in text and "chưa xác minh" in text
    assert "0912" not in text
    verified = service.model_copy(update={"verified": True, "verified_on": __import__("datetime").date(2026, 11, 1)})
    pack = ContentPack(topics=ctx.pack.topics, hotlines=ctx.pack.hotlines, services=(verified,))
    local = Renderer(load_catalogs(), pack, commune_index())
    text = local.render(respond(State(), Inbound("t", "u", payload=f"w:{BINH_LU}"), replace(ctx, pack=pack)))[0].text
    assert "0912 345 678" in text and "chưa xác minh" not in text


def test_choosing_a_commune_is_remembered(ctx: Context, renderer: Renderer) -> None:
    """A consenting person types their commune once; the services menu then opens on it."""
    asked = respond(State(), Inbound("t", "u", payload="s"), ctx)
    assert asked.state is not None and asked.state.step is Step.AWAIT_COMMUNE
    chosen = respond(asked.state, Inbound("t", "u", text="binh lu"), ctx)
    assert chosen.state is not None and chosen.state.commune == BINH_LU
    text = renderer.render(chosen)[0].text
    assert "Trạm Y tế xã Bình Lư" in text and "Lai Châu" in text
    again = respond(chosen.state, Inbound("t", "u", payload="s"), ctx)
    assert "Trạm Y tế xã Bình Lư" in renderer.render(again)[0].text
    changed = respond(chosen.state, Inbound("t", "u", payload="s:change"), ctx)
    assert changed.state is not None and changed.state.step is Step.AWAIT_COMMUNE


def test_commune_without_consent_is_not_stored(ctx: Context, renderer: Renderer) -> None:
    """Without consent the commune is used for the answer and forgotten."""
    outcome = respond(None, Inbound("t", "u", text="Nam Thanh Miện"), ctx)
    assert outcome.state is None
    assert "Trạm Y tế xã Nam Thanh Miện" in renderer.render(outcome)[0].text


def test_ambiguous_and_unknown_communes(ctx: Context, renderer: Renderer) -> None:
    """A shared name offers choices; an unknown name asks again; other intents still win."""
    waiting = State(step=Step.AWAIT_COMMUNE)
    choices = respond(waiting, Inbound("t", "u", text="tân phú"), ctx)
    assert all(b.payload.startswith("w:") for b in choices.replies[0].buttons[:2])
    missing = respond(waiting, Inbound("t", "u", text="qwzx"), ctx)
    assert "chưa tìm thấy" in renderer.render(missing)[0].text
    moved_on = respond(waiting, Inbound("t", "u", text="muốn chết"), ctx)
    assert "115" in renderer.render(moved_on)[0].text
    topic = respond(waiting, Inbound("t", "u", text="prep là gì"), ctx)
    assert topic.state is not None and topic.state.step is not Step.AWAIT_COMMUNE


def test_location_without_coordinates_is_honest(ctx: Context, renderer: Renderer) -> None:
    """With no coordinates in the directory, a shared location gets an honest answer and a question."""
    outcome = respond(State(), Inbound("t", "u", location=Location(22.39, 103.46)), ctx)
    text = renderer.render(outcome)[0].text
    assert "chưa có tọa độ" in text and "không được lưu" in text
    assert outcome.state is not None and outcome.state.step is Step.AWAIT_COMMUNE


def test_location_lists_nearest_with_distances(ctx: Context) -> None:
    """Services with coordinates are listed nearest first, with distances in Vietnamese format."""

    def place(ident: str, lat: float, lon: float) -> Service:
        return Service(
            id=ident, types=["hiv_testing"], province=12, commune=BINH_LU, coverage="commune", verified=False,
            source="test", latitude=lat, longitude=lon, vi=ServiceTexts(name=f"Nơi {ident}"), en=ServiceTexts(name=ident),
        )

    services = (place("far", 22.9, 103.9), place("near", 22.40, 103.47), place("too_far", 10.8, 106.7))
    pack = ContentPack(topics=ctx.pack.topics, hotlines=ctx.pack.hotlines, services=services)
    outcome = respond(State(), Inbound("t", "u", location=Location(22.39, 103.46)), replace(ctx, pack=pack))
    text = Renderer(load_catalogs(), pack, commune_index()).render(outcome)[0].text
    assert text.index("Nơi near") < text.index("Nơi far") and "Nơi too_far" not in text
    assert "Cách khoảng 1,5 km" in text, "decimal comma for vi_VN"


def test_services_of_a_stale_commune_button(ctx: Context, renderer: Renderer) -> None:
    """A button naming a commune that does not exist falls back to the menu."""
    outcome = respond(State(), Inbound("t", "u", payload="w:999999"), ctx)
    assert "không còn dùng được" in renderer.render(outcome)[0].text


def test_compiled_catalogs_match_their_sources(tmp_path: Path) -> None:
    """A catalog compiled at install (.mo) reads back exactly like its .po source."""
    import shutil

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    from content.i18n import LOCALE_DIR

    copy = tmp_path / "locale"
    shutil.copytree(LOCALE_DIR, copy, ignore=shutil.ignore_patterns("*.mo"))
    for po in copy.glob("*/LC_MESSAGES/*.po"):
        with po.open("rb") as source:
            catalog = read_po(source, locale=po.parent.parent.name)
        with po.with_suffix(".mo").open("wb") as target:
            write_mo(target, catalog)
        po.unlink()  # only the compiled catalog is left to read
    assert load_catalogs(copy).messages == load_catalogs(LOCALE_DIR).messages
