"""Training and running the Rasa NLU server from its own Python 3.10 environment.

Rasa gets a minimal environment (none of the app's secrets) and its auth token through an
inherited pipe, read by `nlu/rasa_launcher.py`: the token is in neither its command line
nor its environment (`ps`, `/proc/<pid>/cmdline`, `/proc/<pid>/environ`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from bot.config import NLU_DIR, ROOT, Settings
from bot.nlu.exceptions import NluServerError

logger = logging.getLogger(__name__)

MODEL_INPUTS = ("config.yml", "data", "civicbot_nlu")
LAUNCHER = NLU_DIR / "rasa_launcher.py"
# All that Rasa gets of the app's environment: no CIVICBOT_* secret, no channel token.
PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE")
STARTUP_TIMEOUT_SECONDS = 180.0
LOOPBACK = "127.0.0.1"
NO_MODEL_GRACE_SECONDS = 20.0  # answering without a model this long: the model is unusable


@dataclass(frozen=True)
class RunningServer:
    """A local Rasa server: where it listens and the token it wants."""

    url: str
    token: str
    process: subprocess.Popen[bytes]


def rasa_command(settings: Settings) -> list[str]:
    """The `rasa` entry point of the NLU environment."""
    rasa = settings.nlu_python.parent / "rasa"
    if not rasa.exists():
        raise NluServerError(f"Rasa is not installed at {rasa}; run `make setup` first.")
    return [str(rasa)]


def rasa_env() -> dict[str, str]:
    """Environment for Rasa: a few harmless variables of ours, our components importable,
    no telemetry, no GPU probing."""
    env = {name: os.environ[name] for name in PASSED_ON if name in os.environ}
    env.update(
        PYTHONPATH=str(NLU_DIR),
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="3",
        CUDA_VISIBLE_DEVICES="-1",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore",
        # The training cache keys on config and data, not on our components' code.
        RASA_MAX_CACHE_SIZE="0",
    )
    return env


def model_is_stale(settings: Settings) -> bool:
    """Whether the model is missing or older than any of its inputs."""
    model = settings.nlu_model_path
    if not model.exists():
        return True
    built = model.stat().st_mtime
    inputs = [ROOT / "domain.yml", *(NLU_DIR / name for name in MODEL_INPUTS)]
    return any(
        path.stat().st_mtime > built
        for root in inputs
        for path in ([root] if root.is_file() else root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    )


def train(settings: Settings, *, force: bool = False) -> Path:
    """Train the NLU model when it is missing or stale (or always, with `force`)."""
    model = settings.nlu_model_path
    if not force and not model_is_stale(settings):
        logger.info("NLU model %s is up to date.", model)
        return model
    model.parent.mkdir(parents=True, exist_ok=True)
    command = [
        *rasa_command(settings), "train", "nlu",
        "--config", str(NLU_DIR / "config.yml"),
        "--nlu", str(NLU_DIR / "data"),
        "--domain", str(ROOT / "domain.yml"),
        "--out", str(model.parent),
        "--fixed-model-name", model.name.removesuffix(".tar.gz"),
    ]  # fmt: skip
    started = time.monotonic()
    subprocess.run(command, cwd=NLU_DIR, env=rasa_env(), check=True)
    logger.info("Trained %s in %.1f s.", model, time.monotonic() - started)
    return model


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def start(
    settings: Settings, *, port: int | None = None, quiet: bool = True, host: str = LOOPBACK
) -> RunningServer:
    """Start a Rasa server on loopback with the trained model and wait until it answers
    (blocking; from a running event loop `start_async` does not block it).

    With no `port`, a free one is picked; if another process takes it first and Rasa exits,
    it is tried once more on another port.
    """

    def run() -> RunningServer:
        return asyncio.run(start_async(settings, port=port, quiet=quiet, host=host))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    # Called from async code (scripts, `local_server`): wait in a thread of its own loop,
    # one that lives as long as the process: Rasa is stopped when the thread that started
    # it ends (PR_SET_PDEATHSIG, nlu/rasa_launcher.py), not only the process.
    return _STARTER.submit(run).result()


_STARTER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="rasa-start")


async def start_async(
    settings: Settings,
    *,
    port: int | None = None,
    quiet: bool = True,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
    host: str = LOOPBACK,
) -> RunningServer:
    """`start`, waiting without blocking the event loop; cancelling it stops Rasa."""
    if not settings.nlu_model_path.exists():
        raise NluServerError(
            f"No NLU model at {settings.nlu_model_path}; run `civicbot nlu train` first."
        )
    attempts = 1 if port else 2
    for attempt in range(1, attempts + 1):
        try:
            return await _start_once(
                settings, port or free_port(), quiet=quiet, timeout=timeout, host=host
            )
        except _RasaExited:
            if attempt == attempts:
                raise
            logger.warning("Rasa did not start; trying another port.", exc_info=True)
    raise AssertionError("unreachable")  # pragma: no cover


async def _start_once(
    settings: Settings, port: int, *, quiet: bool, timeout: float, host: str
) -> RunningServer:
    # Quiet: Rasa's output goes to a file, shown in the error if it fails to start.
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(tempfile.TemporaryFile()) if quiet else None
        server = spawn(settings, port, log, host=host)
        try:
            await wait_until_ready(server, timeout)
        except NluServerError as error:
            stop(server)
            raise type(error)(f"{error}\n{_tail(log)}") from error
        except BaseException:
            stop(server)
            raise
    return server


def spawn(
    settings: Settings, port: int, log: IO[bytes] | None = None, *, host: str = LOOPBACK
) -> RunningServer:
    """Start `rasa run` on `host` (loopback unless it serves other machines: `civicbot nlu
    serve --host`), the token written into a pipe it inherits; at once."""
    command = [
        str(settings.nlu_python), str(LAUNCHER), "{fd}", str(os.getpid()), "run",
        "--enable-api",
        "--interface", host,
        "--port", str(port),
        "--model", str(settings.nlu_model_path),
    ]  # fmt: skip
    if not settings.nlu_python.exists():
        raise NluServerError(f"No NLU environment at {settings.nlu_python}; run `make setup`.")
    read, write = os.pipe()
    try:
        os.write(write, settings.nlu_token.encode())  # far below a pipe's buffer: no blocking
        os.close(write)
        command[2] = str(read)
        output = subprocess.STDOUT if log else None
        process = subprocess.Popen(
            command, cwd=NLU_DIR, env=rasa_env(), stdout=log, stderr=output, pass_fds=(read,)
        )
    finally:
        os.close(read)
        with contextlib.suppress(OSError):
            os.close(write)
    # This process checks it by loopback when it listens on every address.
    reachable = LOOPBACK if host in ("0.0.0.0", "::", "") else host
    return RunningServer(f"http://{reachable}:{port}", settings.nlu_token, process)


def _tail(log: IO[bytes] | None, lines: int = 20) -> str:
    if log is None:
        return ""
    log.seek(0)
    text = log.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


class _RasaExited(NluServerError):
    """Rasa stopped while starting (e.g. its port was taken)."""


async def wait_until_ready(server: RunningServer, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
    """Poll the server's status endpoint until the model is loaded."""
    deadline = time.monotonic() + timeout
    answering_since: float | None = None
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise _RasaExited(f"Rasa exited with code {server.process.returncode}.")
            answer = await status(client, server.url, server.token)
            if answer == "ready":
                return
            if answer == "no model":
                answering_since = answering_since or time.monotonic()
                if time.monotonic() - answering_since > NO_MODEL_GRACE_SECONDS:
                    raise NluServerError(f"Rasa answers at {server.url} but loaded no model.")
            await asyncio.sleep(0.5)
    raise NluServerError(f"Rasa did not answer at {server.url} within {timeout:.0f} s.")


async def status(client: httpx.AsyncClient, url: str, token: str) -> str:
    """What Rasa's `/status` says: "ready" (a model loaded), "no model", or "down"."""
    try:
        response = await client.get(f"{url}/status", params={"token": token})
        if response.status_code == 200 and response.json().get("model_file"):
            return "ready"
        return "no model" if response.status_code == 200 else "down"
    except (httpx.HTTPError, ValueError):  # ValueError: not JSON
        return "down"


def stop(server: RunningServer) -> None:
    """Stop the server, politely first."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextlib.contextmanager
def local_server(settings: Settings) -> Iterator[tuple[str, str]]:
    """The NLU server to use: `CIVICBOT_NLU_URL` if set, else a local one for the block."""
    if settings.nlu_url:
        yield settings.nlu_url, settings.nlu_token
        return
    server = start(settings)
    try:
        yield server.url, server.token
    finally:
        stop(server)
