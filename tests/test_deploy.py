"""deploy/: the backup and its restore drill on a real PostgreSQL, the nginx configuration
checked by nginx itself, the systemd units by systemd-analyze."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pg
import pytest
from cluster import nginx_main, nginx_site, start_nginx
from sqlmodel import Session

from bot.nlu.server import free_port
from storage import migrate
from storage.db import create_db_engine
from storage.models import Unit, UnitKind

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_backup_and_restore_drill(postgres: pg.PostgresServer, tmp_path: Path) -> None:
    name = f"live_{uuid.uuid4().hex[:8]}"
    url = postgres.create_database(name)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with Session(engine) as session:
        session.add(Unit(id="kim_lien", name="UBND phường Kim Liên", kind=UnitKind.ward))
        session.commit()
    assert postgres.bindir is not None or shutil.which("pg_dump")
    env = {**os.environ, "PG_BIN": str(postgres.bindir or ""), "ADMIN_URL": postgres.admin_url}
    backup = subprocess.run(
        [DEPLOY / "backup" / "backup.sh"],
        env={**env, "DATABASE_URL": libpq(url), "BACKUP_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    dump = Path(backup.stdout.strip())
    assert dump.parent == tmp_path and dump.stat().st_size > 0
    drill = [str(DEPLOY / "backup" / "restore-drill.sh"), str(dump), name]
    same = subprocess.run(drill, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert same.returncode == 0, same.stderr
    assert "restored: unit 1" in same.stdout and "equal" in same.stdout
    assert f"alembic revision {migrate.head_revision()}" in same.stdout
    with Session(engine) as session:  # the live database moved on: the drill says so
        session.add(Unit(id="hai_ba_trung", name="UBND phường Hai Bà Trưng", kind=UnitKind.ward))
        session.commit()
    engine.dispose()
    differs = subprocess.run(
        drill, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert differs.returncode == 1 and "differ" in differs.stderr
    broken = tmp_path / "broken.dump"
    broken.write_bytes(dump.read_bytes()[:200])
    failed = subprocess.run(
        [drill[0], str(broken)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert failed.returncode == 2


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the self-signed certificate deploy/nginx/make-cert.sh makes."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [DEPLOY / "nginx" / "make-cert.sh", folder], check=True, capture_output=True, timeout=60
    )
    return folder


def _site(certificate: Path, https_port: int, app_ports: list[int]) -> str:
    """deploy/nginx/civicbot.conf on loopback ports."""
    return nginx_site(
        {
            "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "listen 127.0.0.1:5000;": f"listen 127.0.0.1:{free_port()};",
            "/etc/civicbot/tls": str(certificate),
        },
        {"civicbot_app": app_ports},
    )


def test_the_nginx_configuration_is_valid(tmp_path: Path, certificate: Path) -> None:
    main = nginx_main(tmp_path, _site(certificate, free_port(), [8001, 8002]))
    result = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


class _DyingApp:
    """An app process that reads each request whole, as if it handled it, and dies before
    it answers (it closes the connection)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.seen: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += connection.recv(65536)
                head, body = data.split(b"\r\n\r\n", 1)
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                while length and len(body) < int(length.group(1)):
                    body += connection.recv(65536)
                self.seen.append(head.split(b"\r\n", 1)[0].decode())

    def close(self) -> None:
        self.listener.close()


@contextlib.contextmanager
def _behind_nginx(folder: Path, certificate: Path) -> Iterator[tuple[httpx.Client, list[str]]]:
    """deploy/nginx/civicbot.conf in front of two dying app processes: a client of nginx, and
    the request lines the processes read."""
    apps = [_DyingApp(), _DyingApp()]
    https_port = free_port()
    site = _site(certificate, https_port, [app.port for app in apps])
    nginx = start_nginx(folder, site, https_port)
    seen: list[str] = []
    try:
        with httpx.Client(base_url=f"https://127.0.0.1:{https_port}", verify=False) as client:
            yield client, seen
            seen.extend(line for app in apps for line in app.seen)
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        for app in apps:
            app.close()


@pytest.mark.parametrize(
    "path",
    [
        "/telegram/webhook",  # Telegram's webhook
        "/zalo/webhook",
        "/api/web/messages",  # the web chat
        "/api/web/photos",
        "/open311/v2/requests.json",
        "/dashboard/tickets/HN-2026-000001/accept",  # a dashboard action
        "/dashboard/signin/code",
    ],
)
def test_nginx_never_sends_a_post_the_first_app_may_have_handled_to_the_second(
    tmp_path: Path, certificate: Path, path: str
) -> None:
    """A POST that reached an app process is never sent again to the other one: that process
    may have handled it before it died (the client gets a 502 and retries, if it retries,
    with the same message id or update id)."""
    with _behind_nginx(tmp_path, certificate) as (client, seen):
        posted = client.post(path, json={"update_id": 1, "text": "mất nước"}, timeout=30)
        assert posted.status_code == 502
    assert seen == [f"POST {path} HTTP/1.1"]


def test_nginx_sends_a_get_the_first_app_failed_on_to_the_second(
    tmp_path: Path, certificate: Path
) -> None:
    """The control of the test above: the same failure on a GET (which changes nothing) is
    retried on the other process, and the test sees it."""
    with _behind_nginx(tmp_path, certificate) as (client, seen):
        assert client.get("/dashboard", timeout=30).status_code == 502
    assert seen == ["GET /dashboard HTTP/1.1"] * 2


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_the_systemd_units_verify(tmp_path: Path) -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    copies = []
    for unit in units:  # instances of the templates, as they are enabled
        name = unit.name.replace("@.", "@8001.")
        text = unit.read_text().replace(
            "/opt/civicbot/.venv/bin/civicbot", shutil.which("true") or "/bin/true"
        )
        (tmp_path / name).write_text(re.sub(r"^(User|Group)=.*$", "", text, flags=re.M))
        copies.append(str(tmp_path / name))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *copies],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert problems == [], result.stderr
