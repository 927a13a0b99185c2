"""deploy/: the backup and its restore drill on a real PostgreSQL, the nginx configuration
checked by nginx itself, the systemd units by systemd-analyze."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pg
import pytest
from sqlmodel import Session

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


def nginx_config(tmp_path: Path, replacements: dict[str, str]) -> Path:
    """deploy/nginx/civicbot.conf with ports and paths replaced, in a main file nginx can
    run as an ordinary process from `tmp_path`."""
    site = (DEPLOY / "nginx" / "civicbot.conf").read_text()
    for old, new in replacements.items():
        assert old in site, old
        site = site.replace(old, new)
    (tmp_path / "civicbot.conf").write_text(site)
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log warn;\n"
        "worker_processes 1;\nevents { worker_connections 1024; }\n"
        f"http {{\n  access_log off;\n  client_body_temp_path {tmp_path}/body;\n"
        f"  proxy_temp_path {tmp_path}/proxy;\n  include {tmp_path}/civicbot.conf;\n}}\n"
    )
    return main


def test_the_nginx_configuration_is_valid(tmp_path: Path) -> None:
    subprocess.run(
        [DEPLOY / "nginx" / "make-cert.sh", tmp_path], check=True, capture_output=True, timeout=60
    )
    main = nginx_config(
        tmp_path,
        {
            "listen 443 ssl;": "listen 127.0.0.1:18443 ssl;",
            "listen 127.0.0.1:5000;": "listen 127.0.0.1:15000;",
            "/etc/civicbot/tls": str(tmp_path),
        },
    )
    result = subprocess.run(
        [NGINX, "-t", "-c", str(main), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


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
