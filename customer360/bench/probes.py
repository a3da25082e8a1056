"""Freshness probes: a marker event produced into the live path, polled on the read path.

Each probe is a weblog page view with an error (`error_message` = a unique marker) for a known
customer, produced to Kafka with its production time (wall clock, also the record's `date`).
It is visible once `customer_recent_errors` on the read path holds the marker; the delay between
the two is the data freshness a reader experiences. A probe is produced every `interval_s`
whatever happened to earlier ones, so several are in flight when the pipeline is slow.

The read path is one object with `visible(markers) -> set[str]`: the serving copy read as a BI
tool would (`ServingCopyReadPath`), or the profile API (`ApiReadPath`).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Producer

from customer360.config import Settings
from customer360.serving.reader import ServingNotPublished, ServingReader

PROBE_PAGE = "bench_probe.html"


class ServingCopyReadPath:
    """The published serving copy, read-only, as a BI tool or the API reads it."""

    name = "serving-copy"

    def __init__(self, settings: Settings):
        self.reader = ServingReader(settings.serving_path)

    def visible(self, probes: list[Probe]) -> set[str]:
        if not probes:
            return set()
        try:
            cur = self.reader.cursor()
        except ServingNotPublished:
            return set()
        try:
            rows = cur.execute(
                "select error_message from customer_recent_errors"
                " where customer_id in (select unnest(?)) and page = ?"
                " and error_message in (select unnest(?))",
                [sorted({p.customer_id for p in probes}), PROBE_PAGE, [p.marker for p in probes]],
            ).fetchall()
        finally:
            cur.close()
        return {r[0] for r in rows}

    def close(self) -> None:
        self.reader.close()


class ApiReadPath:
    """`GET /api/customers/{id}` of the profile API; a probe is visible in its recent errors."""

    name = "api"

    def __init__(self, url: str, token: str | None = None):
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        self.client = http.client.HTTPConnection(host, int(port), timeout=10)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def visible(self, probes: list[Probe]) -> set[str]:
        found = set()
        for customer_id in sorted({p.customer_id for p in probes}):
            try:
                self.client.request("GET", f"/api/customers/{customer_id}", headers=self.headers)
                response = self.client.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.client.close()
                continue
            if response.status != 200:
                continue
            errors = json.loads(body).get("recent_errors", [])
            found |= {e.get("error_message") for e in errors}
        return {p.marker for p in probes if p.marker in found}

    def close(self) -> None:
        self.client.close()


@dataclass
class Probe:
    marker: str
    customer_id: int
    produced_at: float  # epoch seconds, just before the produce call
    visible_at: float | None = None
    partition: int | None = None  # where Kafka stored it (set on delivery)
    offset: int | None = None

    @property
    def freshness_s(self) -> float | None:
        return None if self.visible_at is None else self.visible_at - self.produced_at


def never_visible(probes: list[Probe], customers_present: set[int]) -> tuple[int, int]:
    """(lost, customer gone): the `probes` never visible whose customer still exists
    (`customers_present`), and those whose customer was deleted. The generator's stream deletes
    customers as the sources do, the probes' too (3 of the first hundred in a 300 s run at
    100,000 customers), and a deleted customer has no profile to show a probe in: that is the
    rule, not a lost record."""
    missing = [p for p in probes if p.freshness_s is None]
    gone = sum(1 for p in missing if p.customer_id not in customers_present)
    return len(missing) - gone, gone


def lateness_s(probe: Probe, customers_present: set[int], polled_until: float) -> float | None:
    """What a probe counts as in the freshness percentiles: its freshness; for one never
    visible whose customer still exists, its age when polling stopped (`polled_until`, the end
    of the drain): it was at least that late, so a lost probe weighs on p50 and p95 instead of
    leaving them (the targets are missed anyway: Bench.targets); None for one whose customer
    was deleted (no profile to show it in: not a lateness)."""
    if probe.freshness_s is not None:
        return probe.freshness_s
    if probe.customer_id not in customers_present:
        return None
    return polled_until - probe.produced_at


@dataclass
class Prober:
    """Produces a probe every `interval_s` and polls the read path every `poll_s` for every
    probe not yet visible, however old, until the drain ends (`polled_until`): a probe held
    up for minutes is late, not gone, and is seen when it appears."""

    settings: Settings
    read_path: object
    customer_ids: list[int]
    interval_s: float = 1.0
    poll_s: float = 0.1
    probes: list[Probe] = field(default_factory=list)
    polled_until: float | None = None  # when polling stopped (time.time())

    def __post_init__(self):
        self._stop_producing = threading.Event()
        self._abandoned = threading.Event()
        self._stop_polling = threading.Event()
        self._lock = threading.Lock()
        self._producer = Producer(
            {"bootstrap.servers": self.settings.kafka_bootstrap, "linger.ms": 0, "acks": "all"}
        )
        self._threads = [
            threading.Thread(target=self._produce_loop, name="bench-probe-produce", daemon=True),
            threading.Thread(target=self._poll_loop, name="bench-probe-poll", daemon=True),
        ]

    def start(self) -> Prober:
        for thread in self._threads:
            thread.start()
        return self

    def _produce_one(self, n: int) -> None:
        customer_id = self.customer_ids[n % len(self.customer_ids)]
        marker = f"bench probe {uuid.uuid4().hex}"
        produced_at = time.time()
        record = {
            "event_id": str(uuid.uuid4()),
            "user_id": customer_id,
            "date": datetime.fromtimestamp(produced_at, UTC).isoformat(timespec="milliseconds"),
            "session_id": f"bench-{n}",
            "page": PROBE_PAGE,
            "action": "view",
            "error_message": marker,
        }
        probe = Probe(marker, customer_id, produced_at)
        with self._lock:
            self.probes.append(probe)

        def delivered(error, message) -> None:
            if error is None:
                probe.partition, probe.offset = message.partition(), message.offset()

        self._producer.produce(
            self.settings.topic("weblogs"),
            value=json.dumps(record),
            key=str(customer_id),
            on_delivery=delivered,
        )
        self._producer.poll(0)

    def _produce_loop(self) -> None:
        started = time.monotonic()
        n = 0
        while not self._stop_producing.is_set():
            self._produce_one(n)
            n += 1
            self._stop_producing.wait(max(0.0, started + n * self.interval_s - time.monotonic()))
        if not self._abandoned.is_set():
            self._producer.flush(30)

    def pending(self) -> list[Probe]:
        with self._lock:
            return [p for p in self.probes if p.visible_at is None]

    def _poll_loop(self) -> None:
        while not self._stop_polling.is_set():
            waiting = self.pending()
            if waiting:
                try:
                    seen = self.read_path.visible(waiting)
                except Exception:  # noqa: BLE001 - a failed read is retried at the next poll
                    seen = set()
                now = time.time()
                for probe in waiting:
                    if probe.marker in seen:
                        probe.visible_at = now
            self._stop_polling.wait(self.poll_s)

    def stop_producing(self) -> None:
        self._stop_producing.set()
        self._threads[0].join(30)

    def abandon(self) -> None:
        """Stop at once, probes undelivered dropped: the bench was interrupted or failed, and
        Kafka may be stopping (a producer left running retries its connection and logs every
        failure until the process ends)."""
        if self._abandoned.is_set():
            return
        self._abandoned.set()
        self._stop_producing.set()
        self._stop_polling.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)
        self._producer.purge()
        self._producer.close()

    def drain(self, timeout_s: float) -> None:
        """Wait until every probe is visible (or `timeout_s`), then stop polling."""
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._stop_polling.set()
        self._threads[1].join(30)
        self.polled_until = time.time()
