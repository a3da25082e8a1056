"""`stream`: keeps producing live activity into Mongo and Kafka at a steady rate.

Every event is one record: one Kafka message, or one Mongo insert/update/delete. Which kind comes
next is the event mix's (`event_mix.py`); what each event contains and the state it changes are
`LiveEvents`' (`live_events.py`). A `bad_share` of the events are bad records.

Pacing: every `tick_s` the number of events due since the start (`rate * elapsed`) is produced;
inserts due in one tick go to Mongo in one `insert_many` per collection.
"""

from __future__ import annotations

import json
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
from confluent_kafka import KafkaError, Message
from pymongo import MongoClient

from customer360.addresses import redact_uri
from customer360.config import Settings
from customer360.generator.event_mix import BAD, STREAM_MIX, SmoothWeightedRoundRobin
from customer360.generator.history import create_indexes
from customer360.generator.live_events import LiveEvents
from customer360.generator.outputs import KafkaOutput
from customer360.kafka_topics import ensure_topics


@dataclass
class StreamSummary:
    seconds: float
    events: int
    by_kind: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    bad_by_kind: Counter = field(default_factory=Counter)
    kafka_failed: int = 0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return self.describe()

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        sources = ", ".join(f"{k} {v}" for k, v in sorted(self.by_source.items()))
        bad = ", ".join(f"{k} {v}" for k, v in sorted(self.bad_by_kind.items())) or "none"
        return (
            f"streamed {self.events} events in {self.seconds:.1f} s ({self.rate:.1f} events/s)\n"
            f"  by source: {sources}\n  by kind: {kinds}\n  bad records: {bad}"
            + (f"\n  Kafka delivery failures: {self.kafka_failed}" if self.kafka_failed else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "events": self.events,
            "rate": self.rate,
            "by_kind": dict(self.by_kind),
            "by_source": dict(self.by_source),
            "bad_by_kind": dict(self.bad_by_kind),
            "kafka_failed": self.kafka_failed,
        }


class _SharedLog:
    """The `--log` file: written by the producing thread and the Mongo writer thread."""

    def __init__(self, path: Path):
        self.file = path.open("a", encoding="utf-8", buffering=1 << 16)
        self.lock = threading.Lock()

    def write(self, text: str) -> None:
        with self.lock:
            self.file.write(text)

    def close(self) -> None:
        with self.lock:
            self.file.close()


def _log_delivery(log: _SharedLog) -> Callable[[Message, KafkaError | None, Any], None]:
    def write(message: Message, error: KafkaError | None, entry: dict[str, Any]) -> None:
        if error is None:
            entry["partition"] = message.partition()
            entry["offset"] = message.offset()
        else:
            entry["error"] = str(error)
        log.write(json.dumps(entry, default=str) + "\n")

    return write


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def stream(
    settings: Settings,
    rate: float,
    duration: float | None = None,
    bad_share: float = 0.01,
    seed: int | None = None,
    log_path: Path | str | None = None,
    progress: Callable[[str], None] | None = print_progress,
    progress_every_s: float = 5.0,
    mix: Mapping[str, float] | None = None,
    tick_s: float = 0.05,
    stop: threading.Event | None = None,
    identity: bool = True,
) -> StreamSummary:
    """Produce `rate` events per second for `duration` seconds (forever if None).

    Stops at the next tick when `stop` is set, on Ctrl-C or on SIGTERM (a second Ctrl-C stops at
    once); always flushes what it produced.
    `mix` overrides the weights of `STREAM_MIX` (kinds missing from it keep theirs).
    `log_path`: append one JSON line per record produced (Kafka ones once delivered, with
    partition and offset).
    `identity` (the default): weblogs are anonymous until the session's login (the browser's
    `anonymous_id`, shared devices), some in-store orders are guest sales by email, and some
    opened emails are followed by an `unsubscribed` record (records.py); False writes every
    weblog and order with its user_id, as before identity stitching (unsubscribes stay).
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if not 0 <= bad_share < 1:
        raise ValueError("bad_share must be in [0, 1)")
    weights = {**STREAM_MIX, **(mix or {})}
    unknown = set(weights) - set(STREAM_MIX)
    if unknown:
        raise ValueError(f"unknown kinds in mix: {sorted(unknown)}; known: {sorted(STREAM_MIX)}")
    if bad_share:
        weights[BAD] = bad_share / (1 - bad_share) * sum(weights.values())
    scheduler = SmoothWeightedRoundRobin(weights)
    rng = random.Random(seed)
    stop = stop or threading.Event()

    ensure_topics(settings)
    client = MongoClient(settings.mongo_uri, serverSelectionTimeoutMS=10_000)
    log = _SharedLog(Path(log_path)) if log_path else None
    kafka = KafkaOutput(
        settings, linger_ms=5, on_delivered=_log_delivery(log) if log is not None else None
    )
    previous_handlers = {}
    if threading.current_thread() is threading.main_thread():

        def stop_at_next_tick(signum, frame):
            if stop.is_set():  # asked twice: stop now
                raise KeyboardInterrupt
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, stop_at_next_tick)
    try:
        db = client[settings.mongo_db]
        try:
            create_indexes(db)  # updates and deletes find users by id
        except pymongo.errors.ServerSelectionTimeoutError as error:
            raise RuntimeError(
                f"MongoDB at {redact_uri(settings.mongo_uri)} did not answer within 10 s; "
                "is it running?"
            ) from error
        streamer = LiveEvents(settings, db, kafka, rng, log, identity=identity)
        streamer.discover()
        if progress:
            progress(
                f"stream: {len(streamer.customers)} customers, {len(streamer.orders)} recent "
                f"orders, {len(streamer.pending_emails)} emails awaiting opens/clicks; "
                f"{rate:g} events/s" + (f" for {duration:g} s" if duration else " until Ctrl-C")
            )
        started = time.monotonic()
        next_progress = started + progress_every_s
        ticks = 0
        try:
            while True:
                elapsed = time.monotonic() - started
                final = stop.is_set() or (duration is not None and elapsed >= duration)
                if duration is not None:
                    elapsed = min(elapsed, duration)
                due = int(rate * elapsed) - streamer.events
                tick_wall, tick_at = datetime.now(UTC), time.monotonic() - started
                for _ in range(max(0, due)):
                    # Dated when it was due, so the events of one tick do not share a time.
                    late_s = max(0.0, tick_at - (streamer.events + 1) / rate)
                    streamer.emit(scheduler.next(), tick_wall - timedelta(seconds=late_s))
                streamer.flush_writes()
                kafka.poll()
                if progress and time.monotonic() >= next_progress:
                    next_progress += progress_every_s
                    progress(_progress_line(streamer, time.monotonic() - started))
                if final:
                    break
                ticks += 1
                pause = started + ticks * tick_s - time.monotonic()
                if pause > 0:  # (not stop.wait: a signal handler setting it could deadlock)
                    time.sleep(pause)
        except KeyboardInterrupt:
            if progress:
                progress("stream: interrupted, flushing")
        finally:
            seconds = time.monotonic() - started
            streamer.flush_writes()
            streamer.mongo.close()
            kafka.producer.flush(30)
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        if log is not None:
            log.close()
        client.close()
    summary = StreamSummary(
        seconds=seconds,
        events=streamer.events,
        by_kind=streamer.by_kind,
        by_source=streamer.by_source,
        bad_by_kind=streamer.bad_by_kind,
        kafka_failed=kafka.failed,
    )
    return summary


def _progress_line(streamer: LiveEvents, seconds: float) -> str:
    top = ", ".join(f"{k} {v}" for k, v in streamer.by_kind.most_common())
    return (
        f"stream: {seconds:.0f} s, {streamer.events} events "
        f"({streamer.events / max(seconds, 1e-9):.1f}/s): {top}"
    )
