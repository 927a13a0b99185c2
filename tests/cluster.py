"""CivicBot deployed as deploy/ describes, on loopback, for tests and benchmarks.

`Cluster.start` runs `civicbot db upgrade` (the deploy step), `civicbot nlu serve` replicas,
nginx with deploy/nginx/civicbot.conf (ports, certificate and upstream lists rewritten; a
self-signed certificate made by deploy/nginx/make-cert.sh), `civicbot run` app processes, and
`civicbot telegram set-webhook` so that the fake Telegram posts every update through nginx's
TLS. Every process's output goes to a log file in the cluster's directory.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fake_telegram import FakeTelegram

from bot.nlu.server import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
CIVICBOT = str(Path(sys.executable).with_name("civicbot"))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NLU_TOKEN = "cluster-nlu-token"
WEBHOOK_SECRET = "cluster-webhook-secret"


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def _get(url: str, **params: str) -> httpx.Response | None:
    try:
        return httpx.get(url, params=params, timeout=2.0)
    except httpx.HTTPError:
        return None


def nginx_main(directory: Path, site: str) -> Path:
    """`site` (a civicbot.conf) in a main file nginx can run as an ordinary process from
    `directory`, with its logs there."""
    d = directory
    (d / "civicbot.conf").write_text(site)
    (d / "nginx.conf").write_text(
        f"pid {d}/nginx.pid;\nerror_log {d}/nginx-error.log warn;\nworker_processes 1;\n"
        "events { worker_connections 1024; }\n"
        f"http {{\n  access_log {d}/nginx-access.log;\n  client_body_temp_path {d}/body;\n"
        f"  proxy_temp_path {d}/proxy;\n  include {d}/civicbot.conf;\n}}\n"
    )
    return d / "nginx.conf"


def start_nginx(directory: Path, site: str, port: int) -> subprocess.Popen[bytes]:
    """nginx serving `site` from `directory`, once it listens on `port`."""
    process = subprocess.Popen(
        [NGINX, "-c", str(nginx_main(directory, site)), "-p", str(directory), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(directory / "nginx-stderr.log").open("ab"),
        start_new_session=True,
    )
    wait_until(lambda: _listening(port), 30, "nginx listening")
    return process


def nginx_site(replacements: dict[str, str], upstreams: dict[str, list[int]]) -> str:
    """deploy/nginx/civicbot.conf with strings replaced and each upstream's servers listed
    anew (same options as the file's first server line)."""
    site = (DEPLOY / "nginx" / "civicbot.conf").read_text()
    for old, new in replacements.items():
        if old not in site:
            raise ValueError(f"{old!r} is not in deploy/nginx/civicbot.conf")
        site = site.replace(old, new)
    for name, ports in upstreams.items():
        block = re.search(rf"upstream {name} \{{\n(.*?)\n\}}", site, re.S)
        if block is None:
            raise ValueError(f"no upstream {name}")
        lines = block.group(1).splitlines()
        servers = [line for line in lines if line.strip().startswith("server ")]
        others = [line for line in lines if not line.strip().startswith("server ")]
        template = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:{port}", servers[0])
        new = [template.format(port=port) for port in ports] + others
        site = site.replace(block.group(1), "\n".join(new))
    return site


@dataclass
class App:
    """One `civicbot run` process."""

    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [CIVICBOT, "run"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def ready(self) -> bool:
        answer = _get(f"http://127.0.0.1:{self.port}/readyz")
        return answer is not None and answer.status_code == 200

    def kill(self) -> None:
        """`kill -9`: no shutdown, turns in flight lost with the process."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Cluster:
    directory: Path
    database_url: str
    fake: FakeTelegram
    apps: list[App] = field(default_factory=list)
    replicas: list[subprocess.Popen[bytes]] = field(default_factory=list)
    nginx: subprocess.Popen[bytes] | None = None
    https_port: int = 0
    nlu_port: int = 0

    @classmethod
    def start(
        cls,
        directory: Path,
        database_url: str,
        *,
        apps: int = 2,
        replicas: int = 2,
        extra_env: dict[str, str] | None = None,
        seed: Callable[[str], None] | None = None,
    ) -> Cluster:
        """Start everything and wait until every app process is ready (database and Rasa);
        `seed(url)` runs after the migration, before the apps start."""
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [DEPLOY / "nginx" / "make-cert.sh", directory], check=True, capture_output=True
        )
        context = ssl.create_default_context(cafile=str(directory / "civicbot.crt"))
        fake = FakeTelegram(webhook_verify=context).start()
        cluster = cls(directory, database_url, fake)
        try:
            cluster._start(apps, replicas, extra_env or {}, seed)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
        values = {
            "database_url": self.database_url,
            "nlu_token": NLU_TOKEN,
            "nlu_url": f"http://127.0.0.1:{self.nlu_port}",
            "telegram_token": self.fake.token,
            "telegram_base_url": self.fake.base_url,
            "telegram_webhook_url": f"https://127.0.0.1:{self.https_port}/telegram/webhook",
            "telegram_webhook_secret": WEBHOOK_SECRET,
            "dashboard_secret": "cluster-dashboard-secret",
            "upload_dir": str(self.directory / "uploads"),
            **extra,
        }
        env.update({f"CIVICBOT_{k.upper()}": v for k, v in values.items()})
        return env

    def _start(
        self,
        apps: int,
        replicas: int,
        extra: dict[str, str],
        seed: Callable[[str], None] | None,
    ) -> None:
        self.https_port, self.nlu_port = free_port(), free_port()
        env = self._env(extra)
        rasa_ports = [free_port() for _ in range(replicas)]
        for index, port in enumerate(rasa_ports):  # they load for a while: first
            with (self.directory / f"rasa-{index + 1}.log").open("ab") as log:
                self.replicas.append(
                    subprocess.Popen(
                        [CIVICBOT, "nlu", "serve", "--port", str(port)],
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        subprocess.run([CIVICBOT, "db", "upgrade"], env=env, check=True, capture_output=True)
        if seed is not None:
            seed(self.database_url)
        app_ports = [free_port() for _ in range(apps)]
        self._start_nginx(app_ports, rasa_ports)
        for index, port in enumerate(app_ports):
            app = App(
                port,
                {**env, "CIVICBOT_HTTP_PORT": str(port)},
                self.directory / f"app-{index + 1}.log",
            )
            app.start()
            self.apps.append(app)
        for port in rasa_ports:
            wait_until(lambda port=port: _ready_rasa(port), 300, f"Rasa replica on {port} ready")
        for app in self.apps:
            wait_until(app.ready, 120, f"app on {app.port} ready")
        subprocess.run(
            [CIVICBOT, "telegram", "set-webhook"], env=env, check=True, capture_output=True
        )

    def _start_nginx(self, app_ports: list[int], rasa_ports: list[int]) -> None:
        site = nginx_site(
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{self.https_port} ssl;",
                "listen 127.0.0.1:5000;": f"listen 127.0.0.1:{self.nlu_port};",
                "/etc/civicbot/tls": str(self.directory),
            },
            {"civicbot_app": app_ports, "civicbot_nlu": rasa_ports},
        )
        self.nginx = start_nginx(self.directory, site, self.https_port)

    def stop(self) -> None:
        for app in self.apps:
            app.stop()
        for process in [*self.replicas, *([self.nginx] if self.nginx else [])]:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.fake.stop()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-40:])
            for path in sorted(self.directory.glob("*.log"))
        )


def _ready_rasa(port: int) -> bool:
    answer = _get(f"http://127.0.0.1:{port}/status", token=NLU_TOKEN)
    return (
        answer is not None and answer.status_code == 200 and bool(answer.json().get("model_file"))
    )


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0
