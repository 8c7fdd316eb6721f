"""`antam staff …` and the first admin of `antam run`, run for real in subprocesses."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.arguments import parser
from bot.staff.commands import usage_problem
from tests.support.cli import antam, free_port

ONE_TIME = re.compile(r"one-time password: ((?:[A-HJ-NP-Z2-9]{4}-){3}[A-HJ-NP-Z2-9]{4})")


def test_add_list_and_reset(clean_env: dict[str, str], tmp_path: Path) -> None:
    """add prints a one-time password once; list shows the accounts; reset gives a new one."""
    result = antam("staff", "add", "Lan.Nguyen", "--role", "staff", "--ward", "03390", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Created staff account 'lan.nguyen' for Xã Bình Lư (Lai Châu) [03390]." in result.stdout
    first = ONE_TIME.search(result.stdout)
    assert first is not None, result.stdout
    assert "chỉ hiện một lần" in result.stdout and "shown only this once" in result.stdout

    result = antam("staff", "add", "so-y-te", "--role", "admin", "--province", "12", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0 and "for Lai Châu [12]" in result.stdout, result.stderr
    result = antam("staff", "add", "quoc-gia", "--role", "admin", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0 and "for all provinces" in result.stdout, result.stderr

    result = antam("staff", "add", "tv-binh-lu", "--role", "counsellor", "--commune", "3390", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0 and "Created counsellor account 'tv-binh-lu' for Xã Bình Lư" in result.stdout, result.stderr
    result = antam("staff", "add", "tv-lai-chau", "--role", "counsellor", "--province", "12", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0 and "for Lai Châu [12]" in result.stdout, result.stderr
    result = antam("staff", "add", "mai", "--role", "staff", "--commune", "3390", "--counsels", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0 and "(also counsels)" in result.stdout, result.stderr

    result = antam("staff", "list", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:2] == ["username", "role"]
    roles = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert roles == {
        "lan.nguyen": "staff", "mai": "staff+", "quoc-gia": "admin", "so-y-te": "admin",
        "tv-binh-lu": "counsellor", "tv-lai-chau": "counsellor",
    }
    assert first.group(1) not in result.stdout

    result = antam("staff", "reset", "LAN.NGUYEN", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    second = ONE_TIME.search(result.stdout)
    assert second is not None and second.group(1) != first.group(1)


def test_usage_errors_exit_2(clean_env: dict[str, str], tmp_path: Path) -> None:
    """Bad usage is refused with a clear message and exit 2, before any database is made."""
    for args, message in (
        (["staff", "add", "lan", "--role", "staff"], "needs --commune"),
        (["staff", "add", "lan", "--role", "staff", "--ward", "3390", "--province", "12"], "not allowed with"),
    ):
        result = antam(*args, env=clean_env, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "antam-data" / "antam.db").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "lan", "--role", "staff"], "needs --commune"),
        (["add", "lan", "--role", "staff", "--ward", "99999"], "not a 2025 commune code"),
        (["add", "lan", "--role", "staff", "--ward", "abc"], "not a 2025 commune code"),
        (["add", "lan", "--role", "admin", "--province", "77"], "not a 2025 province code"),
        (["add", "lan", "--role", "admin", "--ward", "3390"], "not a commune"),
        (["add", "lan", "--role", "counsellor"], "needs --commune CODE or --province CODE"),
        (["add", "lan", "--role", "counsellor", "--province", "77"], "not a 2025 province code"),
        (["add", "l a n", "--role", "admin"], "3-32 characters"),
        (["reset", "x"], "3-32 characters"),
    ],
)
def test_usage_problems(args: list[str], message: str) -> None:
    """Each kind of bad `antam staff` usage gets its own readable reason."""
    problem = usage_problem(parser().parse_args(["staff", *args]))
    assert problem is not None and message in problem


@pytest.mark.parametrize(
    "args", [["add", "lan", "--role", "boss"], ["add", "lan"], ["frobnicate"], []], ids=["role", "no-role", "action", "none"]
)
def test_argument_errors_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown roles and actions, or missing ones, are usage errors (argparse exits 2)."""
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["staff", *args])
    assert exited.value.code == 2 and "usage:" in capsys.readouterr().err


def test_existing_or_unknown_username_exits_1(clean_env: dict[str, str], tmp_path: Path) -> None:
    """Adding a name that exists, or resetting one that does not, fails with exit 1."""
    assert antam("staff", "add", "lan", "--role", "staff", "--ward", "3390", env=clean_env, cwd=tmp_path).returncode == 0
    result = antam("staff", "add", "LAN", "--role", "admin", env=clean_env, cwd=tmp_path)
    assert result.returncode == 1 and "is taken" in result.stderr and "one-time" not in result.stdout
    result = antam("staff", "reset", "nobody", env=clean_env, cwd=tmp_path)
    assert result.returncode == 1 and "no account named 'nobody'" in result.stderr


def _run_until_ready(env: dict[str, str], cwd: Path, name: str) -> str:
    """Start `antam run`, wait for /healthz, stop it with SIGTERM; return what it printed."""
    port = free_port()
    env = dict(env, ANTAM_HTTP_PORT=str(port))
    out_path, err_path = cwd / f"{name}.out", cwd / f"{name}.err"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        # Generous: on a loaded two-core machine a start can take half a minute.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, err_path.read_text()
            # Ready once it says so (the first admin is printed before that line).
            if "is running" not in out_path.read_text():
                time.sleep(0.2)
                continue
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/staff/login", timeout=5) as response:
                assert response.status == 200
            break
        else:
            raise AssertionError(f"antam run did not get ready: {err_path.read_text()}")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, err_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    return out_path.read_text()


def test_run_prints_the_first_admin_password_once(clean_env: dict[str, str], tmp_path: Path) -> None:
    """The first `antam run` creates `admin` and prints its one-time password; later runs do not."""
    first = _run_until_ready(clean_env, tmp_path, "first")
    match = ONE_TIME.search(first)
    assert match is not None, first
    assert "Tài khoản quản trị đầu tiên" in first and "first admin account" in first and "/staff/" in first
    second = _run_until_ready(clean_env, tmp_path, "second")
    assert ONE_TIME.search(second) is None and "admin" not in second.lower().replace("is running", "")
    listed = antam("staff", "list", env=clean_env, cwd=tmp_path)
    assert listed.stdout.splitlines()[1].split()[:3] == ["admin", "admin", "active,"]
