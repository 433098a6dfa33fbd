"""Serving the dashboard: uvicorn on a socket bound before the run starts, in a background
thread beside a run (`perpsim run --dashboard`) or in the foreground for a finished run
(`perpsim dashboard RUN_DIR`). Either way it stops cleanly: Ctrl-C ends the open event
streams at once, then the server."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from types import FrameType

import uvicorn

from sim.dashboard.app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class DashboardError(RuntimeError):
    """The dashboard cannot serve: the address is taken or cannot be bound."""


class _Server(uvicorn.Server):
    """uvicorn's server, which also ends the event streams when it is told to exit."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


class Dashboard:
    """The dashboard of one run directory, on `host`:`port` (port 0: any free port)."""

    def __init__(self, run_dir: Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.run_dir = Path(run_dir)
        self.stopping = threading.Event()
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
            self.socket = socket.socket(family, socket.SOCK_STREAM)
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind(address)
            self.socket.listen(128)  # connections wait in the backlog until uvicorn takes them
        except OSError as exc:
            raise DashboardError(f"cannot serve the dashboard on {host}:{port}: {exc.strerror or exc}") from None
        self.host, self.port = host, self.socket.getsockname()[1]
        config = uvicorn.Config(create_app(self.run_dir, self.stopping), log_level="warning",
                                timeout_graceful_shutdown=2, lifespan="off")
        self.server = _Server(config, self.stopping)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> str:
        """Serve in a background thread; returns the page's URL."""
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="perpsim-dashboard", daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        """End the streams, then the server, and wait for its thread."""
        self.stopping.set()
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)
        self.socket.close()

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C raises KeyboardInterrupt here)."""
        while self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout=0.5)

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C."""
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.stopping.set()
            self.socket.close()
