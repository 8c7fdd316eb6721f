"""Running `python -m bot …` for real in a subprocess, and waiting for `antam run` to be up."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest


def antam(
    *args: str, env: dict[str, str], cwd: Path, input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` and capture its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def chat(user: str, lines: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a scripted `chat --json` conversation, one inbound event per line."""
    return antam("chat", "--json", "--user", user, env=env, cwd=cwd, input="".join(f"{line}\n" for line in lines))


def replies(result: subprocess.CompletedProcess[str]) -> list[dict]:
    """Parse the JSON lines a chat printed."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def data_dir(env: dict[str, str]) -> Path:
    return Path(env["ANTAM_DATA_DIR"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def consent(user: str, env: dict[str, str], cwd: Path) -> None:
    """Start a conversation and accept the privacy notice, so an encrypted record exists."""
    result = chat(user, ["/start", "#button c:accept"], env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at this moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_healthy(port: int, process: subprocess.Popen[bytes], err_path: Path, timeout: float = 60) -> None:
    """Wait for a started `antam run` to answer /healthz; fail with its stderr if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"antam run exited early ({process.returncode}): {err_path.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"no answer from /healthz within {timeout:.0f} s: {err_path.read_text()}")
