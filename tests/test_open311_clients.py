"""The Open311 API through real third-party clients, over HTTP, in JSON and XML.

`georeport` 0.3.1 (reads only: it has no POST) runs in both modes. `three` 0.8.0 is Python 2
code: its module imports `itertools.ifilter`, and its XML mode cannot work on Python 3 at
all (its `relaxml` parser calls `Element.getchildren()`, gone since 3.9, and it indexes
`dict.keys()`). With `ifilter` given back, its JSON mode, POST included, runs unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import georeport
import pytest
import requests
import uvicorn
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.applications import Starlette

from bot.config import settings
from bot.conversation.texts import CATEGORY_NAMES
from bot.directory.store import ensure_directory
from bot.web.open311 import open311_routes
from bot.web.open311.answers import ward_point
from storage import queries
from storage.models import Ticket, TicketCreate, TicketEvent

setattr(itertools, "ifilter", filter)  # noqa: B010 - the one Python 2 name on three's JSON path
import three  # noqa: E402

NOW = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
KEY = "client-test-key-93c1"
SECRET_TEXT = "Tôi tên là Phạm Thị Hoa, số nhà 47, gọi 0912 345 678"


class Server:
    """The API under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, engine: Engine) -> None:
        app = Starlette(routes=open311_routes(engine=engine, clock=lambda: NOW, api_keys=[KEY]))
        # log_config=None: uvicorn's access log reaches the root logger (and caplog).
        config = uvicorn.Config(app, log_config=None, log_level="info", lifespan="off")
        self.server = uvicorn.Server(config)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def server(engine: Engine) -> Iterator[Server]:
    with Session(engine) as session:
        ensure_directory(session=session)
        for days, category in ((2, "water"), (1, "sidewalk")):
            queries.create_ticket(
                timezone=settings.timezone,
                session=session,
                now=NOW - timedelta(days=days),
                ticket_in=TicketCreate(
                    category=category,
                    description=SECRET_TEXT,
                    location_text="số nhà 47 ngõ 5",
                    ward_code="00070",
                    ward_name="Phường Hoàn Kiếm",
                    latitude=21.0249,
                    longitude=105.8523,
                    contact_phone="0912345678",
                ),
            )
    with Server(engine) as running:
        yield running


def check_request(item: dict[str, Any], *, xml: bool) -> None:
    """A request as a client decoded it: the spec's fields, nothing personal."""
    point = ward_point("00070")
    assert point is not None
    assert item["service_request_id"].startswith("PA-2026-")
    assert item["status"] == "open"
    assert item["address"] == "Phường Hoàn Kiếm"
    assert item["description"].endswith("— Phường Hoàn Kiếm")
    assert item["requested_datetime"].endswith("+07:00")
    lat, long = (float(item["lat"]), float(item["long"])) if xml else (item["lat"], item["long"])
    assert (lat, long) == point
    assert "Phạm Thị Hoa" not in str(item) and "0912" not in str(item) and "số nhà" not in str(item)


@pytest.mark.parametrize("mode", ["json", "xml"])
def test_georeport_reads_everything(server: Server, mode: str) -> None:
    client = georeport.GeoReport(f"{server.base}/open311/v2", output_format=mode)
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == list(CATEGORY_NAMES)
    assert {s["metadata"] for s in services} == ({"false"} if mode == "xml" else {False})
    definition = client.get_service_definition("water")
    assert definition["service_code"] == "water"
    assert definition["attributes"] in ([], None)  # XML: an empty <attributes/>
    found = client.get_service_requests()
    assert [r["service_code"] for r in found] == ["sidewalk", "water"]  # newest first
    for item in found:
        check_request(item, xml=mode == "xml")
    only = client.get_service_requests(service_code="water", status="open")
    code = only["service_request_id"] if mode == "xml" else only[0]["service_request_id"]
    one = client.get_service_request(code)
    assert one["service_code"] == "water" and one["service_request_id"] == code
    check_request(one, xml=mode == "xml")
    dated = client.get_service_requests(
        start_date="2026-03-08T00:00:00+07:00", end_date="2026-03-09T00:00:00+07:00"
    )
    assert (
        dated["service_request_id"] if mode == "xml" else dated[0]["service_request_id"]
    ) == code
    for wrong in (
        lambda: client.get_service_definition("potholes"),
        lambda: client.get_service_request("PA-2026-999999"),
    ):
        with pytest.raises(requests.HTTPError) as raised:
            wrong()
        assert raised.value.response.status_code == 404


def test_three_reads_and_posts_in_json(server: Server, engine: Engine) -> None:
    client = three.Three(f"{server.base}/open311/v2", api_key=KEY, format="json")
    assert [s["service_code"] for s in client.services()] == list(CATEGORY_NAMES)
    assert client.services("water") == {"service_code": "water", "attributes": []}
    listed = client.requests()
    assert [r["service_code"] for r in listed] == ["sidewalk", "water"]
    [one] = client.request(listed[1]["service_request_id"])
    check_request(one, xml=False)
    # Only the required arguments (issue 16): no description, names or e-mail.
    [filed] = client.post("waste", address="phố Huế, phường Hai Bà Trưng")
    assert filed["service_request_id"].startswith("PA-2026-") and filed["service_notice"]
    [full] = client.post(
        "infrastructure",
        address="20 phố Huế, Hai Bà Trưng",
        name="Bí Mật",
        description="Đèn đường hỏng",
        email="a@example.vn",
        phone="0987654321",
    )
    assert client.post_response.status_code == 200
    [error] = client.post("graffiti", address="phố Huế")
    assert client.post_response.status_code == 404 and error["code"] == 404
    [error] = client.post("waste", address="phố Huế", api_key="sai")
    assert client.post_response.status_code == 403
    with Session(engine) as session:
        codes = {t.code for t in session.exec(select(Ticket)).all()}
    assert {filed["service_request_id"], full["service_request_id"]} <= codes
    discovered = three.Three(discovery=f"{server.base}/open311/discovery.json").discovery()
    [endpoint] = discovered["endpoints"]
    assert endpoint["url"] == f"{server.base}/open311/v2"
    assert endpoint["formats"] == ["application/json", "text/xml"]


def test_xml_is_served_in_utf8_on_every_resource(server: Server) -> None:
    base = f"{server.base}/open311"
    for path, root, item in (
        ("v2/services.xml", "services", "service"),
        ("v2/services/water.xml", "service_definition", "service_code"),
        ("v2/requests.xml", "service_requests", "request"),
        ("v2/requests.xml?status=closed", "service_requests", None),
        ("discovery.xml", "discovery", "endpoints"),
    ):
        response = requests.get(f"{base}/{path}", timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/xml; charset=utf-8"
        assert response.content.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
        document = ET.fromstring(response.content)
        assert document.tag == root
        assert item is None or document.find(item) is not None
        if root == "services":  # Vietnamese arrives intact
            assert document.findtext("service/service_name") == CATEGORY_NAMES["sidewalk"]
    for path in ("discovery.json", "v2/services.json", "v2/requests.json"):
        response = requests.get(f"{base}/{path}", timeout=10)
        assert response.headers["content-type"] == "application/json; charset=utf-8"
    posted = requests.post(
        f"{base}/v2/requests.xml",
        data={"service_code": "waste", "lat": "21.0285", "long": "105.8542"},
        headers={"X-Api-Key": KEY},
        timeout=10,
    )
    assert posted.status_code == 200
    answer = ET.fromstring(posted.content)
    assert answer.tag == "service_requests"
    assert (answer.findtext("request/service_request_id") or "").startswith("PA-2026-")
    refused = requests.post(f"{base}/v2/requests.xml", data={"service_code": "x"}, timeout=10)
    assert refused.status_code == 403
    assert ET.fromstring(refused.content).findtext("error/code") == "403"


def test_an_api_key_in_the_url_is_refused_and_never_logged(
    server: Server, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The attacker reads the access log for keys; the key only works out of the URL."""
    caplog.set_level(logging.INFO)
    url = f"{server.base}/open311/v2/requests.json"
    form = {"service_code": "waste", "address_string": "phố Huế, Hai Bà Trưng"}
    in_url = requests.post(f"{url}?api_key={KEY}", data=form, timeout=10)
    assert in_url.status_code == 400 and "X-Api-Key" in in_url.json()[0]["description"]
    requests.get(f"{url}?api_key={KEY}", timeout=10)
    assert requests.post(url, data={**form, "api_key": KEY}, timeout=10).status_code == 200
    header = requests.post(url, data=form, headers={"X-Api-Key": KEY}, timeout=10)
    assert header.status_code == 200
    time.sleep(0.2)  # the access log line is written after the answer
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/open311/v2/requests.json?api_key=***" in logged
    assert KEY not in logged
    with Session(engine) as session:
        actors = {event.actor for event in session.exec(select(TicketEvent)).all()}
    assert len(actors) == 2 and all(KEY not in actor for actor in actors)  # system + key
