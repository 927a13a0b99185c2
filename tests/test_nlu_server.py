"""Integration: the app's client and the `civicbot nlu` command against a real Rasa server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from bot.config import Settings
from bot.conversation.dialogue.flow import CONFIDENT
from bot.nlu import server
from bot.nlu.client import NluClient

pytestmark = pytest.mark.rasa

PRODUCT_KEYS = {
    "text", "intent", "confidence", "category", "procedure", "aspect", "location",
    "ticket_code", "phone", "source", "ranking",
}  # fmt: skip


def client_for(running: server.RunningServer) -> NluClient:
    return NluClient(running.url, running.token)


async def test_complaint_with_old_address_is_understood(nlu_server: server.RunningServer) -> None:
    async with client_for(nlu_server) as client:
        result = await client.parse(
            "Rác đổ thành đống ở đầu ngõ phường Kim Liên, 3 ngày chưa ai dọn"
        )
    assert result.source == "rasa"
    assert result.intent == "report_problem"
    assert result.category == "waste"
    assert result.location is not None
    assert result.location.ward_name == "Phường Kim Liên"


async def test_procedure_question_without_diacritics(nlu_server: server.RunningServer) -> None:
    async with client_for(nlu_server) as client:
        result = await client.parse("cho hoi lam ho chieu lan dau het bao nhieu tien vay")
    assert (result.intent, result.procedure, result.aspect) == ("ask_procedure", "ho_chieu", "fee")
    assert result.category is None


async def test_same_understanding_with_and_without_diacritics(
    nlu_server: server.RunningServer,
) -> None:
    pairs = [
        ("đèn đường ngõ 20 hỏng cả tuần nay tối om", "den duong ngo 20 hong ca tuan nay toi om"),
        ("tạm trú cho sinh viên thuê trọ cần gì", "tam tru cho sinh vien thue tro can gi"),
        ("cho tôi nói chuyện với cán bộ", "cho toi noi chuyen voi can bo"),
    ]  # fmt: skip
    async with client_for(nlu_server) as client:
        for accented, plain in pairs:
            a, b = await client.parse(accented), await client.parse(plain)
            assert (a.intent, a.category, a.procedure) == (b.intent, b.category, b.procedure)
            # A message with marks is read by the model that also sees them (its confidence
            # is its own); the dialogue acts on both alike.
            assert min(a.confidence, b.confidence) >= CONFIDENT


# Issue 15's kinds, in messages written for this test (not from the data or the dev sets).
NEW_KINDS = [
    (
        "Chào ad, xin lỗi làm phiền ạ. Hôm thứ 3 em có gửi phản ánh về cái hố ga mất nắp "
        "trước cổng trường, đến nay vẫn chưa thấy ai ra rào lại, đơn của em đã có ai nhận chưa",
        "check_status",
        None,
    ),
    ("cai vu den duong hong toi bao hom truoc, co ai ra sua chua vay", "check_status", None),
    ("cán bộ xuống nhanh, dọn sạch sẽ, tôi rất hài lòng", "rate", None),
    ("khong hai long lam, ho chi don qua loa roi di", "rate", None),
    (
        "mẹ em vừa sinh em bé được một tuần, bây giờ làm giấy tờ cho bé ở đâu ạ",
        "ask_procedure",
        "khai_sinh",
    ),
    (
        "cong ty tuyen dung doi giay chung nhan khong co tien an, xin o dau",
        "ask_procedure",
        "ly_lich_tu_phap",
    ),
    (
        "Dạ em chào anh chị, em xin lỗi nhắn muộn. Em là người dân tổ 7. Quán bia đầu ngõ "
        "bày bàn ghế tràn ra hết vỉa hè, người đi bộ phải đi xuống lòng đường",
        "report_problem",
        "sidewalk",
    ),
    ("where can I buy a bus ticket", "out_of_scope", None),
    ("xe buýt đi Nội Bài mấy giờ có chuyến cuối", "out_of_scope", None),
    # What the tester saw misread (session 4), in their words (not in the training data).
    ("can bo phuong doi tien moi ky giay xac nhan cho toi", "report_problem", "misconduct"),
    ("đây ạ, ngay đầu ngõ", "report_problem", None),
    ("ngo 45 phuong kim lien quan dong da", "report_problem", None),
    ("12 Kim Ma street, Ba Dinh district", "report_problem", None),
    ("Bọn mày toàn lũ ăn hại, gửi bao nhiêu lần không ai làm gì", "check_status", None),
]


@pytest.mark.parametrize(("text", "intent", "label"), NEW_KINDS)
async def test_new_kinds_of_message(
    nlu_server: server.RunningServer, text: str, intent: str, label: str | None
) -> None:
    async with client_for(nlu_server) as client:
        result = await client.parse(text)
    assert result.intent == intent
    assert label in (result.category, result.procedure)
    if intent == "report_problem":  # a bare place or a photo's caption: no category
        assert result.category == label


async def test_ticket_code_and_phone_are_normalised(nlu_server: server.RunningServer) -> None:
    async with client_for(nlu_server) as client:
        result = await client.parse("pa 2026 000321 xu ly den dau roi a, sdt e 0987.654.321")
    assert result.intent == "check_status"
    assert result.ticket_code == "PA-2026-000321"
    assert result.phone == "0987654321"


async def test_entity_offsets_point_into_the_original_text(
    nlu_server: server.RunningServer,
) -> None:
    text = "   Nước   bẩn có mùi ở P.Kim Liên  quận Đống Đa"
    async with client_for(nlu_server) as client:
        result = await client.parse(text)
    assert result.text == text
    assert result.location is not None
    assert result.location.text in text
    assert "Kim Liên" in result.location.text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t ",
        "😀😀😀🙏",
        "\x00\x07\x1b[31m hello \x7f",
        "what is the weather in Hanoi today?",
        "'; DROP TABLE tickets; --",
        "<script>alert('x')</script><b>vỉa hè</b>",
        "rác " * 2500,
        "a" * 10_000,
    ],
    ids=["empty", "whitespace", "emoji", "control", "english", "sql", "html", "long", "10k"],
)
async def test_bad_input_gets_a_well_formed_answer(
    nlu_server: server.RunningServer, text: str
) -> None:
    async with client_for(nlu_server) as client:
        result = await client.parse(text)
    assert result.source == "rasa"
    assert set(result.as_json()) == PRODUCT_KEYS
    assert result.text == text
    assert 0.0 <= result.confidence <= 1.0
    assert nlu_server.process.poll() is None


async def test_server_requires_the_token(nlu_server: server.RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{nlu_server.url}/model/parse", json={"text": "chào"})
    assert response.status_code in (401, 403)


async def test_unreachable_server_falls_back_to_keywords() -> None:
    async with NluClient(f"http://127.0.0.1:{server.free_port()}", "x", timeout=1.0) as client:
        result = await client.parse("vỉa hè phố Huế bị lấn chiếm hết chỗ đi")
    assert (result.source, result.intent, result.category) == (
        "fallback",
        "report_problem",
        "sidewalk",
    )


def _cli(args: list[str], running: server.RunningServer, stdin: str | None = None) -> str:
    env = dict(os.environ, CIVICBOT_NLU_URL=running.url, CIVICBOT_NLU_TOKEN=running.token)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin, capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    return done.stdout


def test_cli_parse_prints_the_product_json(nlu_server: server.RunningServer) -> None:
    out = json.loads(_cli(["nlu", "parse", "vỉa hè phố Huế bị lấn chiếm"], nlu_server))
    assert set(out) == PRODUCT_KEYS
    assert out["intent"] == "report_problem"
    assert out["category"] == "sidewalk"
    assert out["ranking"][0]["intent"] == "report_problem"


def test_cli_parse_jsonl_keeps_order(nlu_server: server.RunningServer) -> None:
    lines = ["xin chào", "mất nước 2 ngày rồi", "", "lam giay khai sinh can gi"]
    out = _cli(["nlu", "parse", "--jsonl"], nlu_server, stdin="\n".join(lines) + "\n")
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in results] == lines
    assert results[1]["category"] == "water"
    assert results[3]["procedure"] == "khai_sinh"


async def test_start_called_from_async_code_waits_in_its_own_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Scripts start the server from async code (`local_server` in bench_turn): `start` must
    not call asyncio.run on the running loop."""
    started = server.RunningServer.__new__(server.RunningServer)

    async def fake_start(*args: object, **kwargs: object) -> server.RunningServer:
        return started

    monkeypatch.setattr(server, "start_async", fake_start)
    assert server.start(Settings()) is started
