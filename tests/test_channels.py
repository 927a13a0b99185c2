"""Each channel's output classifies its own delivery errors (read by the outbox worker), and
only its own: the worker classifies what no channel claims."""

from __future__ import annotations

import datetime as dtm

import pytest
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.channels.telegram import TelegramOutput
from bot.channels.web import WebOutboxOutput
from bot.channels.zalo import ZaloApiError, ZaloClient, ZaloOutput
from bot.outbox.failures import ClassifiesErrors
from bot.outbox.worker import classify_error
from storage.models import Channel

TELEGRAM_TOKEN = "123456789:AAFakeTokenForCivicBotTests_0123456789"


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter()
async def test_each_output_classifies_its_own_errors_only() -> None:
    zalo_client = ZaloClient("4321:channels-test-token")
    try:
        tg = TelegramOutput(Bot(TELEGRAM_TOKEN), max_retries=0)
        za = ZaloOutput(zalo_client)
        web = WebOutboxOutput()
        assert all(isinstance(output, ClassifiesErrors) for output in (tg, za, web))

        flood = tg.classify_error(RetryAfter(dtm.timedelta(seconds=7)))
        assert flood is not None and flood.retry_after == 7 and not flood.permanent
        blocked = tg.classify_error(Forbidden("Forbidden: bot was blocked by the user"))
        assert blocked is not None and blocked.permanent
        not_found = tg.classify_error(BadRequest("Chat not found"))
        assert not_found is not None and not_found.permanent
        network = tg.classify_error(NetworkError("reset"))
        assert network is not None and not network.permanent and network.retry_after is None

        refused = za.classify_error(ZaloApiError("sendMessage", "x", error_code=403))
        assert refused is not None and refused.permanent
        busy = za.classify_error(ZaloApiError("sendMessage", "x", error_code=429))
        assert busy is not None and not busy.permanent

        zalo_error = ZaloApiError("sendMessage", "x", error_code=400)
        telegram_error = RetryAfter(dtm.timedelta(seconds=7))
        assert tg.classify_error(zalo_error) is None
        assert za.classify_error(telegram_error) is None
        assert web.classify_error(zalo_error) is None
        assert web.classify_error(ValueError("empty")) is None  # the worker's own rule
    finally:
        await zalo_client.aclose()


def test_what_no_channel_claims() -> None:
    invalid = classify_error(Channel.web, ValueError("empty"))
    assert invalid.permanent and invalid.reason == "invalid reply: empty"
    unknown = classify_error(Channel.zalo, RuntimeError("boom"))
    assert not unknown.permanent and unknown.retry_after is None
    assert unknown.reason == "RuntimeError: boom"
