"""The local MongoDB-compatible server: SecantusDB (MongoDB wire protocol, change streams).

Only the launcher knows it is not a real mongod; every other module speaks plain pymongo, so a
real replica set (see docker-compose.yml) works the same.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from customer360.addresses import mongo_host_port, redact_uri
from customer360.config import Settings
from customer360.services.processes import LocalServer, ManagedProcess, ServiceError

START_TIMEOUT_S = 60.0


class MongoService(LocalServer):
    name = "the local MongoDB server"
    start_timeout_s = START_TIMEOUT_S

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

    def start(self) -> bool:
        """Start the server unless ours already runs. Returns whether it was started now."""
        if self.already_running():
            return False
        self.refuse_ports_in_use((self.port,), "Stop it, or point C360_MONGO_URI at a free port.")
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

    def not_ready_message(self) -> str:
        return (
            f"MongoDB at {redact_uri(self.settings.mongo_uri)} did not answer ping within "
            f"{self.start_timeout_s:.0f} s."
        )
