"""The extractors' Python API: `Extractor(settings).extract(source, max_records, max_seconds)`.

An `Extractor` keeps its connections (DuckDB, MongoDB, Kafka consumers, open change streams) warm
between calls, so a micro-batch with nothing new costs a few milliseconds. `extract_all` lands
the sources side by side: each source has its own DuckDB cursor (its own transactions on the
same database) and its own thread, so one source's network wait does not hold up the others.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import duckdb
from pymongo import MongoClient

from customer360.config import KAFKA_TOPICS, MONGO_COLLECTIONS, Settings
from customer360.stopping import stop_signals_end_exit_quietly
from extractors.batch import BatchResult
from extractors.kafka_source import KafkaSource
from extractors.mongo_source import MongoSource
from extractors.warehouse import connect_warehouse

log = logging.getLogger(__name__)

SOURCES = MONGO_COLLECTIONS + KAFKA_TOPICS
DEFAULT_MAX_RECORDS = 50_000
DEFAULT_MAX_SECONDS = 5.0
MONGO_TIMEOUT_MS = 10_000
# A reply MongoDB does not finish sending within this is a failed read (a server that hangs);
# the collection copy's replies have a time of their own (mongo_source.COPY_READ_TIMEOUT_S).
MONGO_SOCKET_TIMEOUT_MS = 60_000


class Extractor:
    def __init__(self, settings: Settings, con: duckdb.DuckDBPyConnection | None = None):
        self.settings = settings
        self._con = con
        self._owns_con = con is None
        self._mongo: MongoClient | None = None
        self._sources: dict[str, MongoSource | KafkaSource] = {}
        # Each source lands through its own cursor, so sources can land at the same time.
        self._cursors: dict[str, duckdb.DuckDBPyConnection] = {}
        self._cursor_parent: duckdb.DuckDBPyConnection | None = None
        self._threads: ThreadPoolExecutor | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect_warehouse(self.settings.warehouse)
        return self._con

    def source(self, name: str) -> MongoSource | KafkaSource:
        if name not in SOURCES:
            raise ValueError(f"unknown source {name!r}; the sources are {', '.join(SOURCES)}")
        if name not in self._sources:
            if name in MONGO_COLLECTIONS:
                if self._mongo is None:
                    self._mongo = MongoClient(
                        self.settings.mongo_uri,
                        serverSelectionTimeoutMS=MONGO_TIMEOUT_MS,
                        connectTimeoutMS=MONGO_TIMEOUT_MS,
                        socketTimeoutMS=MONGO_SOCKET_TIMEOUT_MS,
                        # A date outside years 1-9999 (BSON's reach ±292 million years) as
                        # DatetimeMS, landed as {"$date": {"$numberLong": ...}}: decoded as a
                        # datetime it raised InvalidBSON and the collection stopped landing.
                        datetime_conversion="DATETIME_AUTO",
                    )
                    stop_signals_end_exit_quietly()
                self._sources[name] = MongoSource(self._mongo, self.settings.mongo_db, name)
            else:
                self._sources[name] = KafkaSource(self.settings, name)
        return self._sources[name]

    def extract(
        self,
        source: str,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> BatchResult:
        """Land at most `max_records` new records of `source`, spending about `max_seconds`."""
        result = self.source(source).extract(self._cursor(source), max_records, max_seconds)
        if result.landed_anything or result.note:
            log.debug(result.summary_line())
        return result

    def extract_all(
        self,
        sources: tuple[str, ...] = SOURCES,
        max_records: int = DEFAULT_MAX_RECORDS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> tuple[dict[str, BatchResult], dict[str, Exception]]:
        """One bounded batch of each source, side by side; a failing source does not stop the
        others: its exception is returned under its name and its connections are reset (the next
        call reconnects from the stored position)."""
        self.prepare(sources)
        if self._threads is None:
            self._threads = ThreadPoolExecutor(len(SOURCES), thread_name_prefix="extract")
        futures = {
            name: self._threads.submit(self.extract, name, max_records, max_seconds)
            for name in sources
        }
        results: dict[str, BatchResult] = {}
        errors: dict[str, Exception] = {}
        for name, future in futures.items():
            try:
                results[name] = future.result()
            except Exception as exc:  # noqa: BLE001 - handed to the caller per source
                errors[name] = exc
                self.reset(name)
        return results, errors

    def prepare(self, sources: tuple[str, ...] = SOURCES) -> None:
        """Make the sources' connections and cursors now, in the calling thread (not in the
        threads `extract_all` hands the sources to)."""
        for name in sources:
            self.source(name)
            self._cursor(name)

    def _cursor(self, source: str) -> duckdb.DuckDBPyConnection:
        cursor = self._cursors.get(source)
        if cursor is None:
            # Made from a connection of the extractor's own, so the sources' threads and their
            # cursors never share `con` (the build's connection in a micro-batch).
            if self._cursor_parent is None:
                self._cursor_parent = self.con.cursor()
            cursor = self._cursors[source] = self._cursor_parent.cursor()
        return cursor

    def reset(self, source: str) -> None:
        """Drop a source's connections; the next call for it reconnects from the stored position."""
        state = self._sources.pop(source, None)
        if state is not None:
            state.close()
        cursor = self._cursors.pop(source, None)
        if cursor is not None:
            cursor.close()

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        for source in self._sources.values():
            source.close()
        self._sources.clear()
        for cursor in self._cursors.values():
            cursor.close()
        self._cursors.clear()
        if self._cursor_parent is not None:
            self._cursor_parent.close()
            self._cursor_parent = None
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None
        if self._con is not None and self._owns_con:
            self._con.close()
        self._con = None

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
