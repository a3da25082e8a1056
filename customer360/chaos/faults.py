"""What the soak breaks: the micro-batch process, the broker, the Mongo server, the serving
process, and the data (bursts of bad records, changes to customers with activity in flight)."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson import ObjectId
from confluent_kafka import Producer
from pymongo import MongoClient

from customer360.config import Settings
from customer360.generator import bad_records
from customer360.generator.records import truncate_to_millis

ONE_MB = 1_000_000 - 2_000  # under the broker's and the producer's default message limits


class FaultNotInjected(Exception):
    """A fault that could not happen (no process alive to kill): it is not injected, and the
    soak tries it again later (soak.inject_on_schedule)."""


@dataclass
class BatchEvent:
    event: str
    at: float
    process: int
    fields: dict[str, Any]


class LoopProcess:
    """The micro-batch loop (`python -m customer360.chaos.loop`) and what it reported."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        self.log_dir = log_dir
        self.events: list[BatchEvent] = []
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.generation = 0
        self.killed: dict[int, float] = {}  # generation -> when the soak's SIGKILL ended it
        self.reader: threading.Thread | None = None

    def start(self) -> None:
        self.generation += 1
        stderr = (self.log_dir / f"loop-{self.generation}.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "customer360.chaos.loop"],
            env=self.settings.environment(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
        stderr.close()
        self.reader = threading.Thread(
            target=self._read, args=(self.process, self.generation), daemon=True
        )
        self.reader.start()

    def _read(self, process: subprocess.Popen, generation: int) -> None:
        for line in process.stdout:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(BatchEvent(data.pop("event"), data.pop("at"), generation, data))

    def snapshot(self) -> list[BatchEvent]:
        with self.lock:
            return list(self.events)

    def in_flight(self) -> bool:
        """Whether the current process began a batch it has not ended."""
        for event in reversed(self.snapshot()):
            if event.process == self.generation and event.event in ("begin", "end"):
                return event.event == "begin"
        return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.killed[self.generation] = time.time()

    def stop(self, timeout: float = 120) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.reader is not None:
            self.reader.join(10)  # its last lines read: the batch it finished ended

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def median_batch_seconds(self) -> float:
        seconds = sorted(e.fields["seconds"] for e in self.snapshot() if e.event == "end")
        return seconds[len(seconds) // 2] if seconds else 1.0

    def first_success_after(self, moment: float) -> float | None:
        """When the first successful batch that began after `moment` ended."""
        began: dict[tuple[int, int], float] = {}
        for event in self.snapshot():
            key = (event.process, event.fields.get("batch", 0))
            if event.event == "begin":
                began[key] = event.at
            elif event.event == "end" and event.fields["success"]:
                if began.get(key, 0) > moment:
                    return event.at
        return None


class ServingProcess:
    """`python -m customer360.serving` (the profile API), when the serving package exists."""

    def __init__(self, settings: Settings, log_dir: Path):
        self.settings = settings
        self.log_file = log_dir / "serve.log"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def available() -> bool:
        try:
            import customer360.serving.api  # noqa: F401
            import customer360.serving.cli  # noqa: F401
        except ImportError:
            return False
        return True

    @property
    def url(self) -> str:
        return f"http://{self.settings.serve_host}:{self.settings.serve_port}"

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "customer360.serving"],
                env=self.settings.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def get(self, path: str, timeout: float = 10) -> tuple[int, Any]:
        """(status, JSON body) of a GET on the API."""
        request = urllib.request.Request(f"{self.url}{path}")
        if self.settings.api_token:
            request.add_header("Authorization", f"Bearer {self.settings.api_token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, None

    def answering(self) -> bool:
        try:
            return self.get("/api/status", timeout=2)[0] < 500
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class InjectedLog:
    """What the faults wrote themselves, in the stream log's format (source, bad, positions)."""

    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)

    def write(self, entry: dict[str, Any]) -> None:
        with self.lock, self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, default=str) + "\n")


def bad_burst(settings: Settings, log: InjectedLog, rng: random.Random, size: int = 20) -> int:
    """Bad Kafka records of every kind (and a 1 MB one) and bad Mongo documents."""
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.max.bytes": 2_000_000})  # fmt: skip
    written = 0

    def delivered(entry):
        def report(error, message):
            if error is None:
                entry.update(partition=message.partition(), offset=message.offset())
            else:
                entry["error"] = str(error)
            log.write(entry)

        return report

    unknown = bad_records.UNKNOWN_CUSTOMER_OFFSET + rng.randrange(1_000_000)
    for turn in range(size):
        source = ("weblogs", "marketing_emails")[turn % 2]
        good: dict[str, Any] = {
            "user_id": rng.randrange(1, 200),
            "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        if source == "weblogs":
            good |= {"event_id": f"chaos-{rng.getrandbits(64):x}", "session_id": "s",
                     "page": "home.html", "action": "view"}  # fmt: skip
        else:
            good |= {"email_id": f"chaos-{rng.getrandbits(64):x}", "campaign": "chaos",
                     "items": [], "email_opened": False, "email_clicked": False,
                     "updated_at": good["date"]}  # fmt: skip
        kind = (*bad_records.BAD_KINDS, "oversized")[turn % (len(bad_records.BAD_KINDS) + 1)]
        record: dict[str, Any] | None = dict(good)
        if kind == "invalid_json":
            value, record = bad_records.invalid_json(rng, good), None
        elif kind == "missing_user_id":
            record = bad_records.missing_user_id(good)
        elif kind == "wrong_user_id_type":
            record = bad_records.wrong_user_id_type(rng, good)
        elif kind == "wrong_date_type":
            record = bad_records.wrong_date_type(rng, good)
        elif kind == "unknown_customer":
            record["user_id"] = unknown
        else:  # a 1 MB message that is not JSON
            value, record = b"{" + b"x" * ONE_MB, None
        if record is not None:
            value = json.dumps(record).encode()
        entry = {"source": source, "kind": f"chaos_{kind}", "topic": settings.topic(source),
                 "bad": kind}  # fmt: skip
        if kind in ("unknown_customer", "wrong_date_type"):
            entry["event_id" if source == "weblogs" else "email_id"] = good.get(
                "event_id", good.get("email_id"))  # fmt: skip
        producer.produce(settings.topic(source), value=value, on_delivery=delivered(entry))
        written += 1
    producer.flush(60)
    with MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=30_000) as client:
        db = client[settings.mongo_db]
        for collection, document in (
            # Unique per burst: users.id has a unique index, and the soak bursts several times.
            ("users", {"id": f"not-a-number-{ObjectId()}", "first_name": "Chaos"}),
            ("online_orders", {"user_id": "x1", "date": time.time(), "items": []}),
            ("instore_orders", {"user_id": 1, "date": "not a date", "items": []}),
            ("online_orders", {"user_id": 1, "date": time.time(), "items": [{"price": -1}]}),
        ):
            document["_id"] = ObjectId()
            db[collection].insert_one(document)
            log.write({"source": collection, "kind": "chaos_bad_document", "op": "insert",
                       "_id": str(document["_id"]), "bad": "bad_mongo_document"})  # fmt: skip
            written += 1
    return written


def churn_customers(
    settings: Settings, stream_log: Path, log: InjectedLog, rng: random.Random, count: int = 6
) -> int:
    """Update and delete customers who had Kafka activity in the last moments of the stream."""
    recent: deque[int] = deque(maxlen=2_000)
    try:
        with stream_log.open(encoding="utf-8") as file:
            file.seek(max(0, stream_log.stat().st_size - 400_000))
            file.readline()
            for line in file:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry.get("user_id"), int) and "bad" not in entry:
                    recent.append(entry["user_id"])
    except FileNotFoundError:
        pass
    candidates = list(dict.fromkeys(reversed(recent)))[: count * 4]
    rng.shuffle(candidates)
    changed = 0
    with MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=30_000) as client:
        users = client[settings.mongo_db]["users"]
        for customer_id in candidates[:count]:
            user = users.find_one({"id": customer_id}, {"_id": 1})
            if user is None:
                continue
            if changed % 2 == 0:
                # updated_at too, as a profile change sets it: a second churn of the customer
                # then still changes the document (a no-op update makes no change event, and
                # check_raw wants one per logged write).
                now = truncate_to_millis(datetime.now(UTC))
                users.update_one(
                    {"_id": user["_id"]}, {"$set": {"last_name": "Chaos", "updated_at": now}}
                )
                op = "update"
            else:
                users.delete_one({"_id": user["_id"]})
                op = "delete"
            log.write({"source": "users", "kind": f"chaos_{op}", "op": op,
                       "_id": str(user["_id"]), "id": customer_id})  # fmt: skip
            changed += 1
    return changed
