"""Landing ahead of the builds: the sources extracted in a thread of their own, continuously.

A micro-batch that extracts, then builds, then publishes leaves every event that arrives during
its build waiting for the next batch to start before it is even landed; an event's freshness is
then about 1.5 batches. Landed continuously beside the builds, an event is in the warehouse a
few tens of milliseconds after it arrived, and the next build takes in everything landed
meanwhile: freshness is about 1.5 builds, and while the batches catch up, extraction (Python)
and the build (DuckDB) use both cores.

It is safe because every model reads its inputs above its own watermark, per source, and each
source still lands one batch after another (the extractor's transactions, each with its
position): a build sees, per source, a prefix of the landed batches and the next build the
rest. A replayed build is one transaction, so it reads one snapshot of what has been landed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from extractors import SOURCES, BatchResult, Extractor

log = logging.getLogger(__name__)

# With nothing new anywhere, look again after this long: an idle round costs a few ms.
IDLE_PAUSE_S = 0.02
# After a round with a failing source, wait this long before the next (it reconnects then).
FAILED_PAUSE_S = 1.0


class ExtractAhead:
    """Runs `extractor.extract_all` back to back in a thread and keeps what it landed until
    `take()` hands it to the next build."""

    def __init__(self, extractor: Extractor, max_records: int, max_seconds: float):
        self._extractor = extractor
        self._max_records = max_records
        self._max_seconds = max_seconds
        self._lock = threading.Lock()
        self._landed: dict[str, BatchResult] = {}  # since the last take, merged per source
        self._latest: dict[str, BatchResult] = {}  # each source's position and lag, last round
        self._errors: dict[str, str] = {}
        self._first_round = threading.Event()
        self._stop = threading.Event()
        self._something_landed = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="c360-extract", daemon=True)
            self._thread.start()

    def take(self) -> tuple[dict[str, BatchResult], dict[str, str]]:
        """What landed since the last call, one result per source (several landing batches
        merged; a source that landed nothing: its position and lag as of the last round), and
        the last error of each source that failed since. The first call waits for the first
        round, so `remaining_lag` is never a guess."""
        self._first_round.wait()
        with self._lock:
            landed, self._landed = self._landed, {}
            errors, self._errors = self._errors, {}
            self._something_landed.clear()
            for source, latest in self._latest.items():
                landed.setdefault(source, latest)
        return landed, errors

    def wait(self, timeout: float) -> bool:
        """Wait until something landed (or a source failed) since the last `take`, at most
        `timeout` seconds; true if it did."""
        return self._something_landed.wait(timeout)

    def stop(self) -> None:
        """Stop after the round in progress (its batches are committed, or not at all)."""
        self._stop.set()
        self._first_round.set()  # nobody waits for a round that will not come
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                results, failures = self._extractor.extract_all(
                    SOURCES, self._max_records, self._max_seconds
                )
            except Exception as exc:  # noqa: BLE001 - a broken warehouse connection, say
                log.exception("extracting failed")
                results, failures = {}, {source: exc for source in SOURCES}
            with self._lock:
                for source, result in results.items():
                    if result.landed_anything or result.note:
                        self._landed[source] = merged(self._landed.get(source), result)
                    elif source in self._landed:  # its lag is now this round's
                        self._landed[source] = replace(
                            self._landed[source], remaining_lag=result.remaining_lag
                        )
                    self._latest[source] = BatchResult.nothing_landed(
                        source, result.position_after, result.remaining_lag, seconds=0.0
                    )
                for source, exc in failures.items():
                    log.warning("extracting %s failed: %s", source, exc)
                    self._errors[source] = f"{type(exc).__name__}: {exc}"
                if failures or any(r.landed_anything for r in results.values()):
                    self._something_landed.set()
            self._first_round.set()
            if failures:
                self._stop.wait(FAILED_PAUSE_S)
            elif not any(r.landed_anything for r in results.values()):
                self._stop.wait(IDLE_PAUSE_S)


def merged(earlier: BatchResult | None, later: BatchResult) -> BatchResult:
    """One result standing for two rounds of one source, `later` after `earlier`."""
    if earlier is None or not earlier.landed_anything:
        return later
    if not later.landed_anything:
        return replace(
            earlier,
            remaining_lag=later.remaining_lag,
            seconds=earlier.seconds + later.seconds,
            note="; ".join(n for n in (earlier.note, later.note) if n),
        )
    return replace(
        later,
        records=earlier.records + later.records,
        quarantined=earlier.quarantined + later.quarantined,
        bytes=earlier.bytes + later.bytes,
        position_before=earlier.position_before,
        seconds=earlier.seconds + later.seconds,
        note="; ".join(n for n in (earlier.note, later.note) if n),
    )
