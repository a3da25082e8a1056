"""Run the serving app in a background thread (tests, the benchmark, embedding in `c360 up`)."""

from __future__ import annotations

import threading
import time

import uvicorn

from customer360.config import Settings
from customer360.serving.api import create_app
from customer360.serving.cli import check_bind


class BackgroundServer:
    """`with BackgroundServer(settings, port=0) as server: server.url` -> http://127.0.0.1:N"""

    def __init__(self, settings: Settings, host: str | None = None, port: int | None = None):
        self.host = host or settings.serve_host
        check_bind(settings, self.host)
        config = uvicorn.Config(
            create_app(settings),
            host=self.host,
            port=settings.serve_port if port is None else port,
            access_log=False,
            log_level="warning",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="c360-serve", daemon=True)

    @property
    def url(self) -> str:
        sockets = self.server.servers[0].sockets
        host, port = sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the serving app did not start on {self.host}")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
