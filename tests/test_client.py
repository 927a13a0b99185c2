"""The app's Rasa client, against a fake Rasa server on loopback (tests/fake_rasa.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from fake_rasa import DROP, HOLD, FakeRasa, Raw, Request, Silence, serving

from bot.nlu.client import NluClient

TOKEN = "s3cr3t-token"

LANG = {"ward_code": "00199", "ward_name": "Phường Láng"}
KIM_LIEN = {"ward_code": "00229", "ward_name": "Phường Kim Liên"}
DONG_DA = {"ward_code": "00235", "ward_name": "Phường Đống Đa"}


@asynccontextmanager
async def _client(
    fake: FakeRasa, *, url_tail: str = "", token: str = TOKEN, **kwargs: Any
) -> AsyncIterator[NluClient]:
    """A client of `fake`, serving for the block; a short time limit (the fake may hold)."""
    kwargs.setdefault("timeout", 0.5)
    async with serving(fake) as url, NluClient(url + url_tail, token, **kwargs) as client:
        yield client


async def _closed(fake: FakeRasa) -> bool:
    """Whether every connection to `fake` is closed (waiting a little for it to notice)."""
    for _ in range(50):
        if fake.open_connections == 0:
            return True
        await asyncio.sleep(0.01)
    return False


def _span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    return start, start + len(part)


def _crf(text: str, part: str, confidence: float = 0.9) -> dict[str, Any]:
    """A location entity as Rasa's CRFEntityExtractor reports it, offsets into `text`."""
    start, end = _span(text, part)
    return {
        "entity": "location",
        "start": start,
        "end": end,
        "confidence_entity": confidence,
        "value": part,
        "extractor": "CRFEntityExtractor",
    }


def _pattern(text: str, entity: str, part: str, value: str) -> dict[str, Any]:
    """An entity of civicbot_nlu's PatternEntityExtractor: normalised value."""
    start, end = _span(text, part)
    return {
        "entity": entity,
        "value": value,
        "start": start,
        "end": end,
        "confidence_entity": 1.0,
        "extractor": "PatternEntityExtractor",
    }


def _label(
    name: str | None, confidence: float, *others: tuple[str | None, float]
) -> dict[str, Any]:
    ranking = [{"name": name, "confidence": confidence}]
    ranking += [{"name": n, "confidence": c} for n, c in others]
    return {"name": name, "confidence": confidence, "ranking": ranking}


def _answer(
    text: str,
    intent: str | None,
    confidence: float = 0.9,
    *,
    ranking: list[tuple[str, float]] | None = None,
    entities: list[dict[str, Any]] | None = None,
    category: dict[str, Any] | None = None,
    procedure: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A /model/parse answer of Rasa 3.6 with the pipeline of nlu/config.yml."""
    ranking = ranking if ranking is not None else [(intent or "", confidence)]
    return {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
        "category": category or _label(None, 0.8),
        "procedure": procedure or _label(None, 0.8),
    }


def _echo(
    intent: str,
    entity_builders: tuple[Callable[[str], dict[str, Any]], ...] = (),
    **kwargs: Any,
) -> Callable[[Request], dict[str, Any]]:
    """An answer built on the text the server actually received."""

    def handler(request: Request) -> dict[str, Any]:
        text = request.json()["text"]
        entities = [build(text) for build in entity_builders]
        return _answer(text, intent, entities=entities, **kwargs)

    return handler


# --- the request ------------------------------------------------------------------------------


async def test_request_is_post_model_parse_with_token_and_json_text() -> None:
    text = "vỉa hè phố Huế bị lấn chiếm"
    fake = FakeRasa(_answer(text, "report_problem"))
    async with _client(fake) as client:
        await client.parse(text)
    (request,) = fake.requests
    assert request.method == "POST"
    assert request.path == "/model/parse"
    assert request.params == {"token": TOKEN}
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {"text": text}


async def test_base_url_trailing_slash_and_token_escaping() -> None:
    fake = FakeRasa(_answer("alo", "greet"))
    async with _client(fake, url_tail="/", token="a b&c=d") as client:
        await client.parse("alo")
    (request,) = fake.requests
    assert request.path == "/model/parse"
    assert request.params["token"] == "a b&c=d"


# --- mapping Rasa's answer --------------------------------------------------------------------

COMPLAINT = "Vỉa hè chỗ nào ở p. Kim Liên cũng bị lấn chiếm, gọi 0912 345 678"


def _complaint_answer() -> dict[str, Any]:
    text = COMPLAINT
    return _answer(
        text,
        "report_problem",
        0.93,
        ranking=[
            ("report_problem", 0.93),
            ("check_status", 0.02),
            ("nlu_fallback", 0.015),
            ("ask_procedure", 0.01),
            ("human", 0.01),
            ("greet", 0.005),
            ("thank", 0.005),
            ("deny", 0.005),
        ],
        entities=[
            _crf(text, "p", 0.71),
            _crf(text, "Kim Liên", 0.95),
            _pattern(text, "phone", "0912 345 678", "0912345678"),
            _pattern(text, "aspect", "chỗ nào", "place"),
        ],
        category=_label("sidewalk", 0.91, ("construction", 0.04), (None, 0.03)),
        procedure=_label("ho_kinh_doanh", 0.4, (None, 0.3)),
    )


async def test_maps_a_complaint_to_the_product_json() -> None:
    fake = FakeRasa(_complaint_answer())
    async with _client(fake) as client:
        result = await client.parse(COMPLAINT)
    assert result.as_json() == {
        "text": COMPLAINT,
        "intent": "report_problem",
        "confidence": 0.93,
        "category": "sidewalk",
        "procedure": None,  # only for ask_procedure
        "aspect": None,  # only for ask_procedure
        "location": {"text": "p. Kim Liên", **KIM_LIEN, "candidates": []},
        "ticket_code": None,
        "phone": "0912345678",
        "source": "rasa",
        # The top five of Rasa's ranking that are product intents.
        "ranking": [
            {"intent": "report_problem", "confidence": 0.93},
            {"intent": "check_status", "confidence": 0.02},
            {"intent": "ask_procedure", "confidence": 0.01},
            {"intent": "human", "confidence": 0.01},
        ],
    }


async def test_maps_a_procedure_question() -> None:
    text = "làm cccd ở phường Láng mất bao lâu vậy ad"
    answer = _answer(
        text,
        "ask_procedure",
        0.88,
        ranking=[("ask_procedure", 0.88), ("check_status", 0.07)],
        entities=[
            _crf(text, "phường Láng"),
            _pattern(text, "aspect", "mất bao lâu", "duration"),
        ],
        category=_label("other", 0.5),
        procedure=_label("can_cuoc", 0.95, ("ho_chieu", 0.02)),
    )
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    data = result.as_json()
    assert {k: data[k] for k in ("intent", "confidence", "category", "procedure", "aspect")} == {
        "intent": "ask_procedure",
        "confidence": 0.88,
        "category": None,  # only for report_problem
        "procedure": "can_cuoc",
        "aspect": "duration",
    }
    assert data["location"] == {"text": "phường Láng", **LANG, "candidates": []}
    assert data["ranking"] == [
        {"intent": "ask_procedure", "confidence": 0.88},
        {"intent": "check_status", "confidence": 0.07},
    ]


async def test_maps_a_check_status_with_its_code() -> None:
    text = "đơn pa2026000123 của tôi sao rồi"
    answer = _answer(
        text,
        "check_status",
        0.97,
        entities=[_pattern(text, "ticket_code", "pa2026000123", "PA-2026-000123")],
        category=_label("sidewalk", 0.6),
        procedure=_label("khai_sinh", 0.6),
    )
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert (result.intent, result.ticket_code, result.category, result.procedure) == (
        "check_status",
        "PA-2026-000123",
        None,
        None,
    )
    assert (result.location, result.phone, result.source) == (None, None, "rasa")


async def test_complaint_without_a_category() -> None:
    text = "tôi muốn phản ánh"
    answer = _answer(text, "report_problem", category=_label(None, 0.7, ("waste", 0.1)))
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert (result.intent, result.category) == ("report_problem", None)


async def test_labels_outside_the_product_lists_are_dropped() -> None:
    text = "làm thủ tục này ở đâu"
    answer = _answer(
        text,
        "ask_procedure",
        procedure=_label("visa_du_lich", 0.6),
        entities=[_pattern(text, "aspect", "ở đâu", "venue")],
    )
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert (result.intent, result.procedure, result.aspect) == ("ask_procedure", None, None)


@pytest.mark.parametrize("name", ["nlu_fallback", "chitchat", "", None])
async def test_unknown_intent_is_out_of_scope(name: str | None) -> None:
    text = "giá vàng hôm nay"
    answer = _answer(text, name, 0.3, ranking=[(name or "", 0.3), ("greet", 0.2)])
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert (result.intent, result.confidence, result.source) == ("out_of_scope", 0.3, "rasa")
    assert all(item.intent != name for item in result.ranking)


async def test_missing_optional_keys() -> None:
    answer = {"text": "alo", "intent": {"name": "greet", "confidence": 0.99}}
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse("alo")
    assert result.as_json() == {
        "text": "alo",
        "intent": "greet",
        "confidence": 0.99,
        "category": None,
        "procedure": None,
        "aspect": None,
        "location": None,
        "ticket_code": None,
        "phone": None,
        "source": "rasa",
        "ranking": [],
    }


# --- locations --------------------------------------------------------------------------------


async def test_location_spans_split_at_punctuation_are_joined() -> None:
    text = "rác ở phường Quang Trung, quận Đống Đa không ai thu gom"
    answer = _answer(
        text,
        "report_problem",
        entities=[_crf(text, "quận Đống Đa"), _crf(text, "phường Quang Trung")],
        category=_label("waste", 0.9),
    )
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    # Alone, "phường Quang Trung" has five candidates; with its old district, two.
    assert result.as_json()["location"] == {
        "text": "phường Quang Trung, quận Đống Đa",
        "ward_code": None,
        "ward_name": None,
        "candidates": [DONG_DA, KIM_LIEN],
    }


async def test_unknown_street_placed_by_a_ward_named_elsewhere() -> None:
    text = "ổ gà trên phố Ngô Quyền, p. Kim Liên"
    answer = _answer(text, "report_problem", entities=[_crf(text, "phố Ngô Quyền")])
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert result.as_json()["location"] == {"text": "phố Ngô Quyền", **KIM_LIEN, "candidates": []}


async def test_unknown_place_keeps_its_text() -> None:
    text = "phố Ngô Quyền có rác"
    answer = _answer(text, "report_problem", entities=[_crf(text, "phố Ngô Quyền")])
    async with _client(FakeRasa(answer)) as client:
        result = await client.parse(text)
    assert result.as_json()["location"] == {
        "text": "phố Ngô Quyền",
        "ward_code": None,
        "ward_name": None,
        "candidates": [],
    }


async def test_place_found_in_the_text_without_an_entity() -> None:
    text = "đường Láng ngập sâu"
    async with _client(FakeRasa(_answer(text, "report_problem"))) as client:
        result = await client.parse(text)
    assert result.as_json()["location"] == {"text": "đường Láng", **LANG, "candidates": []}


async def test_no_place_no_location() -> None:
    text = "cán bộ thái độ hách dịch"
    async with _client(FakeRasa(_answer(text, "report_problem"))) as client:
        result = await client.parse(text)
    assert result.location is None


# --- leading whitespace, control characters, long text ----------------------------------------


async def test_leading_whitespace_is_stripped_and_offsets_shift_back() -> None:
    text = "  \n\t phố Ngô Quyền có rác  \n"
    fake = FakeRasa(_echo("report_problem", entity_builders=(lambda t: _crf(t, "phố Ngô Quyền"),)))
    async with _client(fake) as client:
        result = await client.parse(text)
    assert fake.texts == ["phố Ngô Quyền có rác"]
    assert result.text == text
    assert result.location is not None
    assert result.location.text == "phố Ngô Quyền"


async def test_offsets_after_leading_whitespace_join_spans() -> None:
    text = "   rác ở phường Quang Trung, quận Đống Đa"
    fake = FakeRasa(
        _echo(
            "report_problem",
            entity_builders=(
                lambda t: _crf(t, "phường Quang Trung"),
                lambda t: _crf(t, "quận Đống Đa"),
            ),
        )
    )
    async with _client(fake) as client:
        result = await client.parse(text)
    assert result.location is not None
    assert result.location.text == "phường Quang Trung, quận Đống Đa"
    assert [c.ward_code for c in result.location.candidates] == ["00235", "00229"]


async def test_control_characters_become_spaces_before_sending() -> None:
    text = "vỉa hè\x00bị\x1blấn chiếm\u200b ở\x7fphố\u2028Huế\ufeff"
    fake = FakeRasa(_echo("report_problem"))
    async with _client(fake) as client:
        result = await client.parse(text)
    assert fake.texts == ["vỉa hè bị lấn chiếm  ở phố Huế"]
    assert result.text == text


async def test_tab_and_newline_are_kept() -> None:
    text = "vỉa hè\tbị lấn chiếm\nở phố Huế"
    fake = FakeRasa(_echo("report_problem"))
    async with _client(fake) as client:
        await client.parse(text)
    assert fake.texts == [text]


async def test_offsets_survive_leading_control_characters() -> None:
    text = "\x00\x07phố Ngô Quyền\x1fcó rác"
    fake = FakeRasa(_echo("report_problem", entity_builders=(lambda t: _crf(t, "phố Ngô Quyền"),)))
    async with _client(fake) as client:
        result = await client.parse(text)
    assert fake.texts == ["phố Ngô Quyền có rác"]
    assert result.location is not None and result.location.text == "phố Ngô Quyền"


async def test_long_text_is_cut_for_the_nlu_only() -> None:
    text = "Vỉa hè phố Huế bị lấn chiếm " + "rất lâu rồi mà không ai xử lý. " * 10
    assert len(text) > 100
    fake = FakeRasa(_echo("report_problem"))
    async with _client(fake, max_chars=40) as client:
        result = await client.parse(text)
    assert fake.texts == ["Vỉa hè phố Huế bị lấn chiếm rất lâu rồi"]
    assert result.text == text


async def test_long_text_cut_counts_after_leading_whitespace() -> None:
    text = " " * 30 + "x" * 100
    fake = FakeRasa(_echo("out_of_scope"))
    async with _client(fake, max_chars=50) as client:
        result = await client.parse(text)
    assert fake.texts == ["x" * 50]
    assert result.text == text


async def test_default_max_chars_is_1000() -> None:
    text = "a " * 1000
    fake = FakeRasa(_echo("out_of_scope"))
    async with _client(fake) as client:
        await client.parse(text)
    assert fake.texts == [("a " * 500).rstrip()]


# --- retries and fallback ------------------------------------------------------------------------


async def test_one_retry_after_a_500_then_success() -> None:
    text = "alo"
    fake = FakeRasa(Raw(500, b"Internal Server Error", "text/plain"), _answer(text, "greet"))
    async with _client(fake) as client:
        result = await client.parse(text)
    assert len(fake.requests) == 2
    assert (result.intent, result.source) == ("greet", "rasa")


async def test_one_retry_after_a_transport_error_then_success() -> None:
    text = "alo"

    fake = FakeRasa(DROP, _answer(text, "greet"))  # closed without an answer
    async with _client(fake) as client:
        result = await client.parse(text)
    assert len(fake.requests) == 2
    assert fake.texts == ["alo", "alo"]
    assert (result.intent, result.source) == ("greet", "rasa")


@pytest.mark.parametrize(
    "failure",
    [DROP, HOLD, Raw(500), Raw(503, b"busy", "text/plain")],
    ids=["dropped", "read-timeout", "500", "503"],
)
async def test_two_failures_fall_back_to_keywords(failure: Raw | Silence) -> None:
    text = "Rác thải ở phường Láng ba ngày không ai thu gom, gọi 0912 345 678"
    fake = FakeRasa(failure)
    async with _client(fake) as client:
        result = await client.parse(text)
    assert len(fake.requests) == 2
    assert result.as_json() == {
        "text": text,
        "intent": "report_problem",
        "confidence": 0.6,
        "category": "waste",
        "procedure": None,
        "aspect": None,
        "location": {"text": "phường Láng", **LANG, "candidates": []},
        "ticket_code": None,
        "phone": "0912345678",
        "source": "fallback",
        "ranking": [{"intent": "report_problem", "confidence": 0.6}],
    }


async def test_transport_error_then_500_falls_back() -> None:
    fake = FakeRasa(DROP, Raw(502))
    async with _client(fake) as client:
        result = await client.parse("vỉa hè phố Huế bị lấn chiếm")
    assert len(fake.requests) == 2
    assert (result.source, result.intent, result.category) == (
        "fallback",
        "report_problem",
        "sidewalk",
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_error_falls_back_without_retry(status: int) -> None:
    fake = FakeRasa(Raw(status, b'{"status": "failure"}'))
    async with _client(fake) as client:
        result = await client.parse("đơn PA-2026-000123 sao rồi")
    assert len(fake.requests) == 1
    assert (result.source, result.intent, result.ticket_code) == (
        "fallback",
        "check_status",
        "PA-2026-000123",
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"version": "3.6.20", "minimum_compatible_version": "3.5.0"}',
        b"[]",
        b"null",
        b'{"text": "x", "entities": []}',
    ],
    ids=["status-json", "list", "null", "no-intent"],
)
async def test_200_with_a_non_parse_json_body_falls_back(body: bytes) -> None:
    fake = FakeRasa(Raw(200, body))
    async with _client(fake) as client:
        result = await client.parse("vỉa hè phố Huế bị lấn chiếm")
    assert len(fake.requests) == 1
    assert (result.source, result.intent, result.category) == (
        "fallback",
        "report_problem",
        "sidewalk",
    )


async def test_200_with_a_non_json_body_falls_back() -> None:
    fake = FakeRasa(Raw(200, b"<html><body>Bad gateway</body></html>", "text/html"))
    async with _client(fake) as client:
        result = await client.parse("vỉa hè phố Huế bị lấn chiếm")
    assert (result.source, result.intent, result.category) == (
        "fallback",
        "report_problem",
        "sidewalk",
    )


async def test_fallback_gets_the_full_original_text() -> None:
    text = "  \x00tôi muốn phản ánh"
    async with _client(FakeRasa(DROP)) as client:
        result = await client.parse(text)
    assert (result.text, result.intent, result.category, result.source) == (
        text,
        "report_problem",
        None,
        "fallback",
    )


# --- one long-lived client ---------------------------------------------------------------------


async def test_many_parses_share_one_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[aiohttp.ClientSession] = []
    session_class = aiohttp.ClientSession

    def counting_session(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        created.append(session_class(*args, **kwargs))
        return created[-1]

    monkeypatch.setattr(aiohttp, "ClientSession", counting_session)
    fake = FakeRasa(_echo("greet"))
    async with _client(fake) as client:
        texts = [f"alo {i}" for i in range(20)]
        results = await asyncio.gather(*(client.parse(t) for t in texts))
        results.append(await client.parse("alo again"))
    assert len(created) == 1
    assert len(fake.requests) == 21
    assert [r.text for r in results] == [*texts, "alo again"]
    assert sorted(fake.texts) == sorted([*texts, "alo again"])
    assert fake.connections <= 8  # the in-flight limit, kept alive and reused


async def test_aclose_closes_the_connections() -> None:
    fake = FakeRasa(_answer("alo", "greet"))
    async with serving(fake) as url:
        client = NluClient(url, TOKEN)
        assert (await client.parse("alo")).intent == "greet"
        assert fake.open_connections == 1
        await client.aclose()
        assert await _closed(fake)


async def test_async_context_manager() -> None:
    fake = FakeRasa(_answer("alo", "greet"))
    async with serving(fake) as url:
        async with NluClient(url, TOKEN) as client:
            assert isinstance(client, NluClient)
            assert (await client.parse("alo")).source == "rasa"
            assert fake.open_connections == 1
        assert await _closed(fake)


async def test_context_manager_closes_on_error() -> None:
    fake = FakeRasa(_answer("alo", "greet"))
    async with serving(fake) as url:
        with pytest.raises(RuntimeError, match="boom"):
            async with NluClient(url, TOKEN) as client:
                await client.parse("alo")
                raise RuntimeError("boom")
        assert await _closed(fake)
