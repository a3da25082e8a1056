"""The local MongoDB-compatible server: SecantusDB (MongoDB wire protocol, change streams).

Only the launcher knows it is not a real mongod; every other module speaks plain pymongo, so a
real replica set (see docker-compose.yml) works the same.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from customer360.config import Settings
from customer360.services.addresses import mongo_host_port, redact_uri
from customer360.services.processes import ManagedProcess, ServiceError, port_in_use, wait_until

START_TIMEOUT_S = 60.0


class MongoService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.host, self.port = mongo_host_port(settings.mongo_uri)
        self.data_dir = settings.home / "mongo" / "data"
        self.process = ManagedProcess("mongo", settings.home / "run")

    def _server_command(self) -> list[str]:
        exe = Path(sys.executable).with_name("secantusd-py")
        if not exe.exists():
            found = shutil.which("secantusd-py")
            if found is None:
                raise ServiceError(
                    "The local MongoDB-compatible server (SecantusDB) is not installed in this "
                    "environment. Run `make install` (it installs the dev extras), or point "
                    "C360_MONGO_URI at a MongoDB replica set."
                )
            exe = Path(found)
        return [
            str(exe),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--storage-path",
            str(self.data_dir.resolve()),
            "--log-level",
            "WARNING",
        ]

    def running_pid(self) -> int | None:
        return self.process.pid()

    def start(self) -> bool:
        if self.process.pid() is not None:
            self.wait_ready()
            return False
        if port_in_use(self.host, self.port):
            raise ServiceError(
                f"Port {self.host}:{self.port} is in use by a process c360 did not start, so the "
                "local MongoDB server cannot listen there. Stop it, or point C360_MONGO_URI at a "
                "free port."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start(self._server_command())
        self.wait_ready()
        return True

    def ready(self) -> bool:
        from pymongo import MongoClient

        try:
            with MongoClient(self.settings.mongo_uri, serverSelectionTimeoutMS=1000) as client:
                client.admin.command("ping")
            return True
        except Exception:  # noqa: BLE001 - any failure means "not ready yet"
            return False

    def wait_ready(self) -> None:
        def ready_or_dead():
            if self.process.pid() is None:
                raise ServiceError(
                    "The MongoDB server exited during start-up. Its log ends with:\n"
                    + self.process.log_tail()
                )
            return self.ready()

        if not wait_until(ready_or_dead, START_TIMEOUT_S, interval=0.3):
            raise ServiceError(
                f"MongoDB at {redact_uri(self.settings.mongo_uri)} did not answer ping within "
                f"{START_TIMEOUT_S:.0f} s. Log: {self.process.log_file}\n" + self.process.log_tail()
            )

    def stop(self) -> bool:
        return self.process.stop(timeout=30)
