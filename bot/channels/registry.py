"""The channels the app runs, registered in one list (`CHANNELS`) through one small protocol,
as Rasa registers its input channels (`rasa/core/channels/__init__.py`):

- `name`: the channel's `storage.models.Channel`;
- `from_settings(config, handler)`: the channel as its settings configure it, handing what it
  receives to `handler`; None when it is off;
- `routes()`: the web routes it adds to the app (webhooks);
- `running()`: what runs beside the web server while the app runs (polling, PTB's
  application), as an async context;
- `output`: how its replies and notices go out (`send`) and what its errors mean
  (`classify_error`: the outbox worker retries, pauses or gives up accordingly);
- `before_replay(message)`: the channel's own first steps for a message the inbox replays
  after a crash (Telegram answers a pressed button's callback and removes its keyboard).

`bot.app` starts every configured channel from this list and gives the outbox worker their
outputs. A new channel: a class like these in its module, one line in `CHANNELS`, its member
of `Channel`, its settings in `bot.config`.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import ClassVar, Protocol

from starlette.routing import BaseRoute

from bot.channels.common import ChannelHandler
from bot.channels.telegram import TelegramChannel
from bot.channels.web import WebChannel
from bot.channels.zalo import ZaloChannel
from bot.config import Settings
from bot.conversation.messages import IncomingMessage, OutputChannel
from bot.inbox import BeforeReplay
from bot.outbox.failures import ClassifiesErrors
from storage.models import Channel


class ChannelOutput(OutputChannel, ClassifiesErrors, Protocol):
    """A channel's output: sends replies and knows what its errors mean."""


class RunningChannel(Protocol):
    """One channel, configured for this run of the app."""

    name: ClassVar[Channel]

    @property
    def output(self) -> ChannelOutput: ...

    def routes(self) -> list[BaseRoute]: ...

    def running(self) -> AbstractAsyncContextManager[object]: ...

    async def before_replay(self, message: IncomingMessage) -> None: ...


class ChannelKind(Protocol):
    """A channel class: its name, and how settings make one (None: the channel is off)."""

    name: Channel

    def from_settings(self, config: Settings, handler: ChannelHandler) -> RunningChannel | None: ...


CHANNELS: tuple[ChannelKind, ...] = (WebChannel, TelegramChannel, ZaloChannel)


def configured(config: Settings, handler: ChannelHandler) -> list[RunningChannel]:
    """The channels `config` turns on, in the order of `CHANNELS`."""
    channels = (kind.from_settings(config, handler) for kind in CHANNELS)
    return [channel for channel in channels if channel is not None]


def before_replay(channels: list[RunningChannel]) -> BeforeReplay:
    """The first steps of a replayed message: its own channel's."""
    by_name = {channel.name: channel for channel in channels}

    async def first_steps(message: IncomingMessage) -> None:
        channel = by_name.get(Channel(message.channel))
        if channel is not None:
            await channel.before_replay(message)

    return first_steps
