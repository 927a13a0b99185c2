"""Runs Rasa's command line with its auth token read from an inherited pipe.

`python rasa_launcher.py FD ARGS…` reads the token from file descriptor FD (to its end),
closes it and runs `rasa ARGS… --auth-token=TOKEN` in this process. The token is only in
`sys.argv`, which `/proc/<pid>/cmdline` does not show, and never in the environment.

Run by the app (`bot.nlu.server`) with the NLU environment's Python 3.10; it is not one of
the model's inputs, so changing it does not retrain the model. Linux also stops this process
when the app that started it dies, however it dies (PR_SET_PDEATHSIG): no orphaned Rasa.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def read_token(fd: int) -> str:
    with os.fdopen(fd, "rb") as pipe:
        return pipe.read().decode("utf-8")


def die_with_parent(parent: int) -> None:
    """SIGTERM to this process when its parent exits; exit now if it already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the app still stops Rasa itself
        return
    if os.getppid() != parent:
        sys.exit("rasa_launcher: the app that started Rasa is gone.")


def main() -> None:
    fd, parent, args = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    token = read_token(fd)
    die_with_parent(parent)
    # "=" form: a generated token may start with "-", which argparse takes for an option.
    sys.argv = ["rasa", *args, f"--auth-token={token}"]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
