"""The periodic jobs, once per cluster: escalation and reminders, and the weekly digests.

They run in the one process that holds the jobs' lock (`storage.locks.leadership`): any
number of `civicbot run` (with CIVICBOT_RUN_JOBS, the default) and `civicbot worker`
processes may start them; the others wait and take over when the holder stops or loses its
database connection. Each job also checks its writes under a lock of the database (the
ticket's row, the outbox's unique dedupe keys), so even two runs at once write once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.config import Settings
from bot.digest.schedule import enqueue_weekly_digests
from bot.directory.calendar import WorkingCalendar
from bot.tickets.escalation import run_escalations
from storage.db import get_session
from storage.locks import leadership
from storage.migrate import upgrade
from storage.models import utcnow

logger = logging.getLogger(__name__)

JOBS_LOCK = "jobs"


async def run_jobs(stop: asyncio.Event, config: Settings, *, retry: float = 5.0) -> None:
    """Run the jobs while this process leads, until `stop` is set."""
    calendar = WorkingCalendar.from_settings(config)

    async def jobs(lost: asyncio.Event) -> None:
        await asyncio.gather(
            run_escalations(lost, calendar=calendar, config=config), weekly_digests(lost)
        )

    def waiting() -> None:
        logger.warning("Another process runs the periodic jobs; this one stands by.")

    await leadership(config.database_url, JOBS_LOCK, jobs, stop, retry=retry, on_wait=waiting)


async def work(config: Settings) -> None:
    """`civicbot worker`: migrate (under the migration lock), then run the jobs while this
    process leads, until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.to_thread(upgrade, config.database_url)
    logger.warning("CivicBot worker started.")
    await run_jobs(stop, config)
    logger.warning("CivicBot worker stopped.")


async def weekly_digests(stop: asyncio.Event, interval: float = 60.0) -> None:
    """Every minute, queue the digests that are due (once per unit and week: dedupe keys)."""
    while not stop.is_set():
        try:  # a thread: SQL and charts for every unit on Mondays, not on the event loop
            await asyncio.to_thread(_queue_due_digests)
        except Exception:
            logger.exception("Queueing the weekly digests failed; trying again in %s s.", interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


def _queue_due_digests() -> None:
    with get_session() as session:
        enqueue_weekly_digests(session=session, now=utcnow())
