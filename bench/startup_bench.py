"""How long the `antam` commands take to start, measured as they are run: `python -m bot …` in a
fresh process (issue #23, "Start-up").

For each command, ROUNDS runs one after another; the CPU time (user + system) of each child
process is read from the kernel (``resource.getrusage(RUSAGE_CHILDREN)`` before and after), and
the wall time from ``perf_counter``. ``antam run`` is measured to the first 200 of /healthz, on
a data directory whose database is already up to date (a first run migrates it beforehand),
then stopped with SIGTERM. The floor is the interpreter itself (``python -c pass``).

    python -m bench.startup_bench [--rounds 5]

Prints a Markdown table; the figures of a run go to bench/RESULTS.md with the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _environment(data: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANTAM_", "TELEGRAM_", "ZALO_"))}
    env.update({"ANTAM_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)})
    return env


def _one(args: Sequence[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """CPU and wall seconds of one run of ``python args…``, which must succeed."""
    cpu, wall = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, timeout=120)
    return _children_cpu() - cpu, time.perf_counter() - wall


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run_until_ready(env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Seconds from starting `antam run` to /healthz answering 200, and the CPU it used by then."""
    port = _free_port()
    env = {**env, "ANTAM_HTTP_PORT": str(port)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if time.perf_counter() - started > READY_TIMEOUT:
                raise RuntimeError("antam run did not become ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        ready = time.perf_counter() - started
        with open(f"/proc/{process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return ready, cpu
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args(argv)
    rounds = max(1, min(options.rounds, 50))
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        env = _environment(cwd / "antam-data")
        _one(["-m", "bot", "db", "upgrade"], env, cwd)  # the database is up to date before `run` is timed
        commands = {
            "python -c pass (floor)": ["-c", "pass"],
            'antam intent "xin chao"': ["-m", "bot", "intent", "xin chao"],
            "antam content check": ["-m", "bot", "content", "check"],
        }
        print("| command | CPU median | CPU min | wall median |")
        print("|---|---|---|---|")
        for name, args in commands.items():
            runs = [_one(args, env, cwd) for _ in range(rounds)]
            cpu = [c for c, _ in runs]
            wall = [w for _, w in runs]
            print(f"| `{name}` | {statistics.median(cpu):.2f} s | {min(cpu):.2f} s | {statistics.median(wall):.2f} s |")
        ready = [_run_until_ready(env, cwd) for _ in range(rounds)]
        print(
            f"| `antam run` to /healthz 200 | {statistics.median(c for _, c in ready):.2f} s "
            f"| {min(c for _, c in ready):.2f} s | {statistics.median(r for r, _ in ready):.2f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
