"""The operator commands for referrals, peer links, indicators and reports, run for real."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from openpyxl import load_workbook

from bot.bootstrap import open_services
from bot.config import load_settings
from bot.runtime import Runtime
from handlers.types import Inbound
from storage.crypto import encode_master_key, generate_master_key
from tests.support.cli import antam, chat


async def _people(env: dict[str, str], *payloads: tuple[str, str]) -> list[str]:
    """Run (user, payload) events in this process against the commands' database (subprocesses
    are slow; only the commands under test run in one). Returns the texts of the replies."""
    services = await open_services(load_settings(env, env_file=None), warn=lambda _m: None)
    texts = []
    try:
        runtime = Runtime(services)
        for user, payload in payloads:
            texts.extend(reply.text for reply in await runtime.handle(Inbound("console", user, payload=payload)))
    finally:
        await services.close()
    return texts


async def _issue_code(env: dict[str, str], user: str = "cli-person") -> str:
    """Accept, choose Bình Lư and take an HIV-test code."""
    texts = await _people(env, (user, "c:accept"), (user, "w:3390"), (user, "ri:tyt_binh_lu:1"))
    return texts[-1].split("Mã giới thiệu của bạn: ")[1][:9]


def _with_key(env: dict[str, str]) -> dict[str, str]:
    return dict(env, ANTAM_MASTER_KEY=encode_master_key(generate_master_key()))


async def test_redeem_from_the_command_line(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`antam referral redeem` accepts a valid code once and explains every refusal with exit 1 or 2."""
    clean_env = _with_key(clean_env)
    code = await _issue_code(clean_env)
    other = antam("referral", "redeem", code, "--ward", "3637", env=clean_env, cwd=tmp_path)
    assert other.returncode == 1 and "dành cho Xã Bình Lư" in other.stderr
    ok = antam("referral", "redeem", code.lower(), "--ward", "3390", env=clean_env, cwd=tmp_path)
    assert ok.returncode == 0 and "Đã xác nhận mã" in ok.stdout
    again = antam("referral", "redeem", code, "--ward", "3390", env=clean_env, cwd=tmp_path)
    assert again.returncode == 1 and "đã được dùng" in again.stderr
    bad = antam("referral", "redeem", "12", "--ward", "3390", env=clean_env, cwd=tmp_path)
    assert bad.returncode == 2 and "8 chữ và số" in bad.stderr
    nowhere = antam("referral", "redeem", code, env=clean_env, cwd=tmp_path)
    assert nowhere.returncode == 2, "a place is required"


async def test_peer_add_writes_links_and_qr_codes(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`antam peer add` prints the code, web and Telegram links, and writes PNG and SVG QR codes."""
    out = tmp_path / "qr"
    result = antam(
        "peer", "add", "--ward", "3390", "--alias", "PE Bình Lư 01", "--bot-username", "antam_test_bot",
        "--out", str(out), env=clean_env, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    code = result.stdout.split("code ")[1].split()[0]
    assert f"https://t.me/antam_test_bot?start={code}" in result.stdout
    assert f"http://127.0.0.1:8080/?p={code}" in result.stdout
    for name in ("web", "telegram"):
        assert (out / f"peer-{code}-{name}.png").read_bytes().startswith(b"\x89PNG")
        assert b"<svg" in (out / f"peer-{code}-{name}.svg").read_bytes()
    listed = antam("peer", "list", "--ward", "3390", env=clean_env, cwd=tmp_path)
    assert code in listed.stdout and "active" in listed.stdout
    assert antam("peer", "add", "--ward", "99999", "--alias", "x y", env=clean_env, cwd=tmp_path).returncode == 2
    person = chat("via-peer", [f"/start {code}", f"#button c:accept:{code}", "#button t:pep"], env=clean_env, cwd=tmp_path)
    assert person.returncode == 0, "the console channel carries the peer code too"
    stats = antam("peer", "stats", code, "--period", "2026", env=clean_env, cwd=tmp_path)
    assert stats.returncode == 0 and "reached <5" in stats.stdout


async def test_indicator_and_report_formats(clean_env: dict[str, str], tmp_path: Path) -> None:
    """Targets are set from the command line, and the report comes as a table, CSV, XLSX and DHIS2."""
    clean_env = _with_key(clean_env)
    await _people(clean_env, *[(f"r{i}", payload) for i in range(6) for payload in ("c:accept", "w:3390")])
    setting = antam("indicator", "set", "--ward", "3390", "--year", "2026", "--estimate", "60", "--target", "80",
                    env=clean_env, cwd=tmp_path)
    assert setting.returncode == 0 and "estimate 60, target 80 %" in setting.stdout
    assert antam("indicator", "set", "--ward", "3390", "--year", "2026", "--estimate", "-3",
                 env=clean_env, cwd=tmp_path).returncode == 2
    year = "2026"
    table = antam("report", "--period", year, "--ward", "3390", env=clean_env, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "Xã Bình Lư" in table.stdout and "80" in table.stdout
    as_csv = antam("report", "--period", year, "--province", "12", "--format", "csv", env=clean_env, cwd=tmp_path)
    rows = list(csv.reader(io.StringIO(as_csv.stdout.lstrip("\ufeff"))))
    assert len(rows) == 1 + 38 + 1, "a header, the 38 communes of Lai Châu and the total"
    workbook_path = tmp_path / "report.xlsx"
    xlsx = antam("report", "--period", f"{year}-H2", "all", "--format", "xlsx", "--output", str(workbook_path),
                 env=clean_env, cwd=tmp_path)
    assert xlsx.returncode == 0, xlsx.stderr
    assert load_workbook(workbook_path).active is not None
    dhis2 = antam("report", "--period", year, "--ward", "3390", "--format", "dhis2", env=clean_env, cwd=tmp_path)
    payload = json.loads(dhis2.stdout)
    assert payload["period"] == "2026" and payload["dataValues"]
    assert antam("report", "--period", "2026-13", "--ward", "3390", env=clean_env, cwd=tmp_path).returncode == 2
    assert antam("report", "--period", "2026", env=clean_env, cwd=tmp_path).returncode == 2
