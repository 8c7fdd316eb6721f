"""The `antam` command line (docs/architecture.md, "Contracts"), run for real in subprocesses.

Every command runs as `python -m bot …` with the working directory set to a fresh tmp dir
(so no .env of the repository is read) and an environment without the caller's An Tâm,
Telegram or Zalo variables.
"""

from __future__ import annotations

import json
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from storage.crypto import encode_master_key, generate_master_key
from tests.support.cli import antam, chat, consent, data_dir, free_port, replies, sha256

ERASED_VI = "Đã xóa toàn bộ dữ liệu"
ERASE_CONFIRM_VI = "Bạn có chắc muốn xóa mọi dữ liệu"


# --- commands that need no database ------------------------------------------------------


def test_content_check_passes(clean_env: dict[str, str], tmp_path: Path) -> None:
    """It validates the shipped content pack and says so."""
    result = antam("content", "check", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Content pack OK"), result.stdout


def test_intent_of_one_text(clean_env: dict[str, str], tmp_path: Path) -> None:
    """It prints one JSON object with the intent recognised in the text argument."""
    result = antam("intent", "muốn đi xét nghiệm HIV", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    shown = json.loads(lines[0])
    assert shown["text"] == "muốn đi xét nghiệm HIV"
    assert shown["intent"] == "hiv_testing"
    assert 0 < shown["score"] <= 1


SERVER_LIBRARIES = ("sqlalchemy", "aiohttp", "telegram", "asyncpg", "aiosqlite", "alembic", "cryptography", "openpyxl")


@pytest.mark.parametrize("args", [["intent", "xin chao"], ["content", "check"]])
def test_content_commands_do_not_load_the_server(args: list[str], clean_env: dict[str, str], tmp_path: Path) -> None:
    """`antam intent` and `antam content check` import no database, web or platform library:
    they start in a fraction of the time the server's imports take (bench/startup_bench.py)."""
    script = (
        "import contextlib, io, json, sys\n"
        "from bot.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main({args!r})\n"
        "loaded = sorted({name.split('.')[0] for name in sys.modules})\n"
        "print(json.dumps({'code': code, 'loaded': loaded}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], env=clean_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["code"] == 0
    assert [name for name in SERVER_LIBRARIES if name in shown["loaded"]] == []


def test_the_role_choices_are_the_stored_roles() -> None:
    """bot/arguments.py lists the roles without importing storage/ (SQLAlchemy): kept in step here."""
    from bot.arguments import ROLES
    from storage.staff import Role

    assert set(ROLES) == {role.value for role in Role}


def test_intent_of_stdin_lines(clean_env: dict[str, str], tmp_path: Path) -> None:
    """It prints one JSON line per stdin line, in order: text, intent, score, topic, safety, language."""
    texts = ["bị thủng bao tối qua", "chào bạn", "giá vàng hôm nay", "mun di xn hiv"]
    result = antam("intent", env=clean_env, cwd=tmp_path, input="\n".join(texts) + "\n")
    assert result.returncode == 0, result.stderr
    shown = [json.loads(line) for line in result.stdout.splitlines()]
    assert [item["text"] for item in shown] == texts
    assert [item["intent"] for item in shown] == ["pep", "greeting", "unknown", "hiv_testing"]
    for item in shown:
        assert {"text", "intent", "score", "topic", "safety", "language"} <= set(item)
    assert shown[0]["topic"] == "pep"
    assert shown[0]["safety"] == {"cues": ["condom_failure"], "help": ["pep", "ec"], "timing": "recent", "marks": []}
    assert shown[2]["topic"] is None and shown[2]["safety"]["cues"] == []


# --- chat --------------------------------------------------------------------------------


def test_scripted_chat_prints_json_replies_and_creates_a_private_key(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    """A scripted chat answers every line as JSON and the first run creates a private key file."""
    result = chat(
        "alice", ["/start", "#button c:accept", "#button i", "xn hiv o dau", "#button x"], env=clean_env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    shown = replies(result)
    assert len(shown) >= 5
    assert "c:accept" in [button["payload"] for button in shown[0]["buttons"]]
    for reply in shown:
        assert isinstance(reply["text"], str) and reply["text"]
        assert isinstance(reply["buttons"], list)
        for button in reply["buttons"]:
            assert isinstance(button["label"], str) and button["label"]
            assert isinstance(button["payload"], str) and button["payload"]
    assert any("Xét nghiệm HIV" in reply["text"] for reply in shown), "free text 'xn hiv o dau' was not understood"
    assert shown[-1].get("quick_exit") is True
    assert not any(reply.get("quick_exit") for reply in shown[:-1])

    folder = data_dir(clean_env)
    key_file = folder / "master.key"
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert str(key_file) in result.stderr
    assert "Back it up" in result.stderr
    assert "A copy of that directory is a\n  copy of everything" in result.stderr
    assert "ANTAM_MASTER_KEY_FILE" in result.stderr


def test_scripted_chat_reports_a_bad_line_and_answers_the_rest(clean_env: dict[str, str], tmp_path: Path) -> None:
    """A malformed scripted line is named on stderr, the others are answered, and the exit is non-zero."""
    result = chat("dan", ["/start", "#location abc", "#button c:decline"], env=clean_env, cwd=tmp_path)
    assert result.returncode != 0
    assert "line 2" in result.stderr
    assert "#location" in result.stderr
    assert "Traceback" not in result.stderr
    shown = replies(result)
    assert len(shown) >= 2
    assert "c:accept" in [button["payload"] for button in shown[0]["buttons"]]


def test_conversation_state_survives_a_restart(clean_env: dict[str, str], tmp_path: Path) -> None:
    """A question asked by one process is answered by the next: the state is stored, not kept in memory."""
    first = chat("bob", ["/start", "#button c:accept", "xóa dữ liệu"], env=clean_env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert ERASE_CONFIRM_VI in replies(first)[-1]["text"]

    second = chat("bob", ["có"], env=clean_env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "A new master key" not in second.stderr
    shown = replies(second)
    assert shown and shown[0]["text"].startswith(ERASED_VI), shown


# --- master key ----------------------------------------------------------------------------


def test_wrong_master_key_is_refused_without_touching_the_database(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    """It rejects a wrong master key without touching the database."""
    consent("erin", clean_env, tmp_path)
    database = data_dir(clean_env) / "antam.db"
    before = sha256(database)
    files_before = sorted(path.name for path in data_dir(clean_env).iterdir())

    wrong = dict(clean_env, ANTAM_MASTER_KEY=encode_master_key(generate_master_key()))
    result = chat("erin", ["/start"], env=wrong, cwd=tmp_path)
    assert result.returncode == 2
    assert "master key does not match" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sha256(database) == before
    assert sorted(path.name for path in data_dir(clean_env).iterdir()) == files_before


def test_missing_master_key_is_refused_and_not_recreated(clean_env: dict[str, str], tmp_path: Path) -> None:
    """Without its key file, a database holding encrypted data is refused and no new key is made."""
    consent("fay", clean_env, tmp_path)
    key_file = data_dir(clean_env) / "master.key"
    key_file.unlink()

    result = chat("fay", ["/start"], env=clean_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "no master key" in result.stderr
    assert "Traceback" not in result.stderr
    assert not key_file.exists()


def test_key_file_kept_outside_the_data_dir(clean_env: dict[str, str], tmp_path: Path) -> None:
    """ANTAM_MASTER_KEY_FILE puts the key file elsewhere: the data dir then holds no key, a copy
    of it opens nothing, and without the setting the database is refused."""
    secrets = tmp_path / "secrets"
    key_file = secrets / "antam.key"
    env = dict(clean_env, ANTAM_MASTER_KEY_FILE=str(key_file))
    first = chat("hal", ["/start", "#button c:accept"], env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert key_file.is_file() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert str(key_file) in first.stderr
    assert "copy of everything" not in first.stderr, "the key is not beside the database"
    assert not (data_dir(clean_env) / "master.key").exists()

    again = chat("hal", ["/start"], env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "A new master key" not in again.stderr

    without = chat("hal", ["/start"], env=clean_env, cwd=tmp_path)
    assert without.returncode == 2
    assert "no master key" in without.stderr
    assert not (data_dir(clean_env) / "master.key").exists()


def test_malformed_master_key_is_refused_readably(clean_env: dict[str, str], tmp_path: Path) -> None:
    """A master key that is not base64 or hex gives a readable error, not a traceback."""
    env = dict(clean_env, ANTAM_MASTER_KEY="not-a-key")
    result = chat("gus", ["/start"], env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "master key" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ANTAM_HTTP_PORT", "abc"),
        ("ANTAM_DATABASE_URL", "mysql://x"),
        ("ANTAM_PUBLIC_URL", "http://example.org"),
    ],
)
def test_invalid_configuration_is_named(clean_env: dict[str, str], tmp_path: Path, name: str, value: str) -> None:
    """An invalid variable exits 2 with a message naming it and no traceback."""
    result = antam("purge", env=dict(clean_env, **{name: value}), cwd=tmp_path)
    assert result.returncode == 2
    assert name in result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir(clean_env) / "master.key").exists()


def test_env_file_is_read_and_the_environment_overrides_it(clean_env: dict[str, str], tmp_path: Path) -> None:
    """A .env file in the working directory is read, and a real environment variable wins over it."""
    (tmp_path / ".env").write_text("ANTAM_RETENTION_DAYS=0\n", encoding="utf-8")
    bad = antam("purge", env=clean_env, cwd=tmp_path)
    assert bad.returncode == 2
    assert "ANTAM_RETENTION_DAYS" in bad.stderr
    assert "Traceback" not in bad.stderr

    overridden = antam("purge", env=dict(clean_env, ANTAM_RETENTION_DAYS="30"), cwd=tmp_path)
    assert overridden.returncode == 0, overridden.stderr
    assert "retention 30 days" in overridden.stdout

    (tmp_path / ".env").write_text("ANTAM_RETENTION_DAYS=7\n", encoding="utf-8")
    from_file = antam("purge", env=clean_env, cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stderr
    assert "retention 7 days" in from_file.stdout


# --- operator tasks ------------------------------------------------------------------------------


def test_db_upgrade_and_purge_say_what_they_did(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`db upgrade` reports an up-to-date database and `purge` reports how many records it removed."""
    upgraded = antam("db", "upgrade", env=clean_env, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "Database is up to date" in upgraded.stdout

    purged = antam("purge", env=clean_env, cwd=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert "Removed 0 record(s)" in purged.stdout
    assert "retention 180 days" in purged.stdout


def test_keys_rotate_reencrypts_and_records_stay_readable(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`keys rotate` re-encrypts the stored record under a new data key, and the person's state still opens."""
    consent("carol", clean_env, tmp_path)
    rotated = antam("keys", "rotate", env=clean_env, cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    assert "New data key #2 is active; re-encrypted 1 record(s)." in rotated.stdout

    # Asking to erase shows the confirmation only when a stored, readable record exists.
    after = chat("carol", ["xóa dữ liệu"], env=clean_env, cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    shown = replies(after)
    assert shown and ERASE_CONFIRM_VI in shown[0]["text"], shown
    assert "p:erase:yes" in [button["payload"] for button in shown[0]["buttons"]]


def test_run_serves_healthz_and_stops_on_sigterm(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`run` serves /healthz and exits 0 soon after SIGTERM."""
    port = free_port()
    env = dict(clean_env, ANTAM_HTTP_PORT=str(port))
    url = f"http://127.0.0.1:{port}/healthz"
    with open(tmp_path / "run.out", "w") as out, open(tmp_path / "run.err", "w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
    try:
        deadline = time.monotonic() + 90
        body: dict | None = None
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"antam run exited early ({process.returncode}): {(tmp_path / 'run.err').read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    assert response.status == 200
                    body = json.loads(response.read().decode("utf-8"))
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        assert body is not None, f"no answer from {url} within 90 s: {(tmp_path / 'run.err').read_text()}"
        assert body["status"] == "ok"

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, (tmp_path / "run.err").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_run_reports_a_busy_port(clean_env: dict[str, str], tmp_path: Path) -> None:
    """`run` on a port already in use exits 2 with a readable message instead of a traceback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = antam("run", env=dict(clean_env, ANTAM_HTTP_PORT=str(port)), cwd=tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_privacy_notice_states_the_configured_retention(clean_env: dict[str, str], tmp_path: Path) -> None:
    """The privacy notice a person consents to states the retention period actually configured
    (the full notice, one tap from the short first one: "Đọc thêm")."""
    result = chat("hana", ["/start", "#button c:more"], env=dict(clean_env, ANTAM_RETENTION_DAYS="30"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first, notice = (reply["text"] for reply in replies(result)[:2])
    assert "Đọc thêm" in json.dumps(replies(result)[0], ensure_ascii=False)
    assert "30 ngày" in notice
    assert "180 ngày" not in first + notice


@pytest.mark.parametrize("args", [["frobnicate"], []], ids=["unknown-command", "no-command"])
def test_usage_errors_exit_2(clean_env: dict[str, str], tmp_path: Path, args: list[str]) -> None:
    """An unknown command, or none at all, is a usage error (exit 2)."""
    result = antam(*args, env=clean_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert not data_dir(clean_env).exists()
