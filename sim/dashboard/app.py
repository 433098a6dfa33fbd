"""The dashboard's web app (Starlette): the page, its static files, the server-sent event
stream that pushes a run directory's new rows, and the final report once it exists.

    GET /          the page (static/index.html)
    GET /static/*  its script, style and the vendored chart library (uPlot, MIT)
    GET /events    text/event-stream: meta, steps, timeline and status messages as the run goes
    GET /report    the run's report.html, once written (404 before)
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sim.dashboard.feed import RunFeed
from sim.report.page import REPORT_FILE

STATIC_DIR = Path(__file__).resolve().parent / "static"
POLL_SECONDS = 0.25
"""How often a stream looks at the run directory for new rows."""
KEEPALIVE_SECONDS = 10.0


def _message(event: str, data: object) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def create_app(run_dir: Path, stopping: threading.Event | None = None) -> Starlette:
    """The app following `run_dir`. `stopping`, once set, ends every open stream, so the
    server can shut down at once (an event stream otherwise never ends)."""
    run_dir = Path(run_dir)
    stopping = stopping or threading.Event()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def events(request: Request) -> Response:
        async def stream() -> AsyncIterator[str]:
            feed = RunFeed(run_dir)
            quiet = 0.0
            while not stopping.is_set():
                sent = False
                for event, data in feed.poll():
                    yield _message(event, data)
                    sent = True
                if await request.is_disconnected():
                    return
                quiet = 0.0 if sent else quiet + POLL_SECONDS
                if quiet >= KEEPALIVE_SECONDS:  # a comment line keeps proxies and the browser patient
                    quiet = 0.0
                    yield ": keepalive\n\n"
                await asyncio.sleep(POLL_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def report(request: Request) -> Response:
        path = run_dir / REPORT_FILE
        if not path.exists():
            return PlainTextResponse("the report is written when the run ends", status_code=404)
        return FileResponse(path, media_type="text/html")

    return Starlette(routes=[
        Route("/", index),
        Route("/events", events),
        Route("/report", report),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ])
