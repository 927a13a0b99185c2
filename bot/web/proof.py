"""Proof-of-fix photos, public: ``GET /anh-ket-qua/<sha256>.jpg`` (`bot.tickets.proof`).

Only photos a unit attached to a resolution are served here, never a citizen's; anything
else is a 404. The address is the photo's SHA-256, so it cannot be guessed from a ticket.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.config import Settings
from bot.config import settings as default_settings
from bot.tickets.proof import PUBLIC_PATH, public_proof_path
from storage.db import get_session

_NOT_FOUND = "Không tìm thấy ảnh này."


def proof_routes(
    *, engine: Engine | None = None, settings: Settings | None = None
) -> list[BaseRoute]:
    """The route of the public proof photos (`engine` default: the app's)."""
    directory = (settings or default_settings).upload_dir

    def find(name: str) -> Path | None:
        with get_session(engine) as session:
            return public_proof_path(session, name[:80], directory)

    async def photo(request: Request) -> Response:
        path = await run_in_threadpool(find, str(request.path_params["name"]))
        if path is None:
            return PlainTextResponse(_NOT_FOUND, status_code=404)
        return FileResponse(
            path,
            media_type="image/jpeg",
            headers={
                "Cache-Control": "public, max-age=86400, immutable",
                "Content-Security-Policy": "default-src 'none'",
            },
        )

    return [Route(f"{PUBLIC_PATH}/{{name}}", photo, methods=["GET", "HEAD"], name="proof_photo")]
