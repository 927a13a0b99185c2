"""The channel registry (`bot.channels.registry`): one entry per channel, each configured from
its settings, adding its routes, and classifying its own delivery errors."""

from __future__ import annotations

import datetime as dtm

import pytest
from starlette.routing import Route
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter

from bot.channels import registry
from bot.channels.telegram import TelegramChannel
from bot.channels.web import WebChannel
from bot.channels.zalo import ZaloApiError, ZaloChannel
from bot.config import Settings
from bot.conversation.messages import Button, CollectingOutput, IncomingMessage
from bot.outbox.failures import ClassifiesErrors
from bot.outbox.worker import classify_error
from storage.models import Channel


class Nobody:
    async def handle(self, message: IncomingMessage, output: CollectingOutput) -> None:
        raise AssertionError("nothing is received here")

    def offered_buttons(self, channel: str, chat_id: str, answer: str) -> tuple[Button, ...]:
        return ()


def settings(**values: str) -> Settings:
    return Settings(**{"telegram_token": None, "zalo_bot_token": None, **values})


def paths(channel: registry.RunningChannel) -> list[str]:
    return [route.path for route in channel.routes() if isinstance(route, Route)]


def test_every_channel_is_registered_once() -> None:
    names = [kind.name for kind in registry.CHANNELS]
    assert sorted(names) == sorted(Channel)
    assert len(set(names)) == len(names)


def test_only_the_web_chat_without_tokens() -> None:
    [web] = registry.configured(settings(), Nobody())
    assert isinstance(web, WebChannel)
    assert web.routes() == []


async def test_tokens_turn_channels_on_with_their_routes() -> None:
    config = settings(
        telegram_token="123456789:AAFakeTokenForCivicBotTests_0123456789",
        telegram_webhook_url="https://civicbot.example/tg/hook",
        telegram_webhook_secret="s3cret-value",
        zalo_bot_token="4321:channels-test-token",
        zalo_webhook_secret="zalo-s3cret",
    )
    channels = registry.configured(config, Nobody())
    try:
        assert [channel.name for channel in channels] == ["web", "telegram", "zalo"]
        telegram, zalo = channels[1], channels[2]
        assert paths(telegram) == ["/tg/hook"]
        assert paths(zalo) == ["/zalo/webhook"]
    finally:
        assert isinstance(zalo, ZaloChannel)
        await zalo.client.aclose()


async def test_telegram_polls_without_a_webhook_url() -> None:
    config = settings(telegram_token="123456789:AAFakeTokenForCivicBotTests_0123456789")
    channel = TelegramChannel.from_settings(config, Nobody())
    assert channel is not None and channel.routes() == []
    assert channel.output.max_retries == 0  # a 429 goes back to the outbox worker at once


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # RetryAfter()
async def test_each_output_classifies_its_own_errors_only() -> None:
    telegram = TelegramChannel.from_settings(
        settings(telegram_token="123456789:AAFakeTokenForCivicBotTests_0123456789"), Nobody()
    )
    zalo = ZaloChannel.from_settings(settings(zalo_bot_token="4321:channels-test-token"), Nobody())
    assert telegram is not None and zalo is not None
    try:
        outputs = [telegram.output, zalo.output, WebChannel().output]
        assert all(isinstance(output, ClassifiesErrors) for output in outputs)
        tg, za, web = outputs

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
        await zalo.client.aclose()


@pytest.mark.parametrize("kind", registry.CHANNELS, ids=lambda kind: str(kind.name))
def test_off_without_its_settings_except_the_web(kind: registry.ChannelKind) -> None:
    channel = kind.from_settings(settings(), Nobody())
    assert (channel is not None) == (kind.name == Channel.web)


async def test_a_replayed_message_takes_its_own_channels_first_steps() -> None:
    seen: list[tuple[str, str]] = []

    def recording(channel: Channel) -> registry.RunningChannel:
        class Recording(WebChannel):
            name = channel

            async def before_replay(self, message: IncomingMessage) -> None:
                seen.append((channel, message.message_id))

        return Recording()

    channels = [recording(Channel.web), recording(Channel.zalo)]
    first_steps = registry.before_replay(channels)
    await first_steps(IncomingMessage("zalo", "7", "7", "m1", text="1"))
    await first_steps(IncomingMessage("telegram", "8", "8", "m2", text="x"))  # not running
    await first_steps(IncomingMessage("web", "9", "9", "m3", text="y"))
    assert seen == [("zalo", "m1"), ("web", "m3")]


def test_what_no_channel_claims() -> None:
    invalid = classify_error(Channel.web, ValueError("empty"))
    assert invalid.permanent and invalid.reason == "invalid reply: empty"
    unknown = classify_error(Channel.zalo, RuntimeError("boom"))
    assert not unknown.permanent and unknown.retry_after is None
    assert unknown.reason == "RuntimeError: boom"
