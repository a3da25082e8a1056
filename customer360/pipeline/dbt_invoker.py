"""dbt in-process, warm: parse once, then `build` with the cached manifest (~1 s, not ~5 s).

dbt is not thread-safe and reads the warehouse path from the C360_WAREHOUSE environment variable
(profiles.yml's `env_var`), so every invocation holds one process-wide lock and sets that variable
from the Settings it was given.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer360.config import Settings

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt"
# dbt and its process-wide state (flags, adapters, the env var above) allow one call at a time.
DBT_LOCK = threading.RLock()
# How many threads wait for DBT_LOCK (see `others_wait_for_dbt`).
_waiting_for_dbt = 0
_WAITING_LOCK = threading.Lock()
# Per-run costs a micro-batch does not need: rewriting manifest.json and run_results.json
# (~0.5-0.8 s for this project; parse writes the manifest Dagster reads, results come back as
# events) and a debug line per SQL statement in logs/dbt.log.
RUN_ARGS = ["--no-write-json", "--log-level-file", "info"]
RESULT_EVENTS = {"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult"}
# dbt's event for each SQL statement it sends, with the node it belongs to.
SQL_EVENT = "SQLQuery"
# What manifest.json says of the parse that wrote it rather than of the project: two parses of
# the same files differ only in these and in each node's `created_at`.
PARSE_METADATA = ("generated_at", "invocation_id", "invocation_started_at", "run_started_at")


def others_wait_for_dbt() -> bool:
    """Whether a thread of this process waits for dbt while another runs it: work that holds
    dbt at leisure (the paced data tests) should then finish quickly."""
    return _waiting_for_dbt > 0


def dbt_in_use() -> bool:
    """Whether another thread of this process runs dbt now (the stream's data tests)."""
    if DBT_LOCK.acquire(blocking=False):
        DBT_LOCK.release()
        return False
    return True


@contextmanager
def _dbt_held():
    global _waiting_for_dbt
    if not DBT_LOCK.acquire(blocking=False):
        with _WAITING_LOCK:
            _waiting_for_dbt += 1
        try:
            DBT_LOCK.acquire()
        finally:
            with _WAITING_LOCK:
                _waiting_for_dbt -= 1
    try:
        yield
    finally:
        DBT_LOCK.release()


def tests_summary(passed: int, run: int, not_passed: dict[str, int]) -> str:
    """`255/259 passed, 4 warn`: the tests that passed, then the others by status."""
    return f"{passed}/{run} passed" + "".join(f", {n} {s}" for s, n in not_passed.items())


class DbtBuildError(RuntimeError):
    """dbt could not run (or some model or test failed); the message lists what failed."""


@dataclass
class DbtBuildResult:
    args: list[str]
    success: bool
    seconds: float
    # (unique_id, status, message) of every node dbt ran.
    nodes: list[tuple[str, str, str | None]] = field(default_factory=list)
    # dbt's structured result events as dicts (what `dbt --log-format json` prints), so Dagster
    # can turn them into materializations and check results.
    events: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    # (unique_id, sql) of every statement dbt sent for a node, in order (see model_replay).
    queries: list[tuple[str, str]] = field(default_factory=list)
    # True when the models' statements were replayed without dbt (no `events` then).
    replayed: bool = False
    # Seconds per model name (replayed: measured by the replay; else dbt's execution_time).
    model_seconds: dict[str, float] = field(default_factory=dict)
    # Replayed data tests: the failing rows each test counted (dbt's runs say it in `events`).
    failing_rows: dict[str, int] = field(default_factory=dict)

    @property
    def models_built(self) -> list[str]:
        return [u for u, status, _ in self.nodes if u.startswith("model.") and status == "success"]

    @property
    def tests_run(self) -> list[tuple[str, str]]:
        return [(u, status) for u, status, _ in self.nodes if u.startswith("test.")]

    def tests_summary(self) -> str:
        """`passed/run passed`, then how many ended otherwise, by status (`4 warn`: tests of
        severity warn, e.g. orders of a customer deleted meanwhile)."""
        tests = self.tests_run
        passed = sum(1 for _, status in tests if status == "pass")
        others = Counter(status for _, status in tests if status != "pass")
        return tests_summary(passed, len(tests), dict(sorted(others.items())))

    @property
    def warnings(self) -> list[str]:
        """The tests that warned: `unique_id: warn: dbt's message`."""
        return [f"{u}: {s}: {m}" for u, s, m in self.nodes if s == "warn"]

    @property
    def failures(self) -> list[str]:
        ok = ("success", "pass", "warn", "skipped")
        return [f"{u}: {s}: {m}" for u, s, m in self.nodes if s not in ok]

    def raise_on_failure(self) -> None:
        if not self.success:
            detail = "\n".join(self.failures) or self.error or "no detail"
            raise DbtBuildError(f"dbt {' '.join(self.args)} failed:\n{detail}")


def manifest_fingerprint(manifest: Mapping) -> str:
    """The same for two parses of the same project by the same dbt and dbt-duckdb (in any
    process), and different when a node, macro, config, variable or the warehouse's name
    differs: a hash of manifest.json without when and by which invocation it was parsed.
    dbt's version is in the manifest's metadata; the adapter's is added."""

    def without_created_at(entry):
        if isinstance(entry, dict):
            return {k: v for k, v in entry.items() if k != "created_at"}
        if isinstance(entry, list):  # `disabled`: the nodes of each id
            return [without_created_at(e) for e in entry]
        return entry

    kept = {}
    for section, entries in manifest.items():
        if section == "metadata":
            kept[section] = {k: v for k, v in entries.items() if k not in PARSE_METADATA}
        elif isinstance(entries, dict):
            kept[section] = {key: without_created_at(e) for key, e in entries.items()}
        else:
            kept[section] = entries
    text = json.dumps([kept, importlib.metadata.version("dbt-duckdb")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def dbt_target_dir(settings: Settings) -> Path:
    """Where our dbt invocations keep manifest, compiled SQL and logs: under C360_HOME."""
    return (settings.home / "dbt" / "target").resolve()


class DbtInvoker:
    """Runs dbt commands in this process against `settings.warehouse`, manifest cached."""

    def __init__(self, settings: Settings, project_dir: Path = DBT_PROJECT_DIR):
        self.settings = settings
        self.project_dir = project_dir
        self.target_dir = dbt_target_dir(settings)
        self._manifest = None
        self._manifest_stamp: float | None = None
        self._manifest_dict: dict | None = None
        self._fingerprint: str | None = None

    @property
    def manifest_path(self) -> Path:
        return self.target_dir / "manifest.json"

    def _common_args(self) -> list[str]:
        return [
            "--project-dir",
            str(self.project_dir),
            "--profiles-dir",
            str(self.project_dir),
            "--target-path",
            str(self.target_dir),
            "--log-path",
            str(self.target_dir.parent / "logs"),
            "--quiet",
        ]

    def _project_stamp(self) -> float:
        """The newest modification time among the project's files: a new one means re-parse."""
        newest = 0.0
        for sub in ("models", "macros", "tests", "seeds", "snapshots"):
            for path in (self.project_dir / sub).rglob("*"):
                newest = max(newest, path.stat().st_mtime)
        for name in ("dbt_project.yml", "profiles.yml", "packages.yml"):
            path = self.project_dir / name
            if path.exists():
                newest = max(newest, path.stat().st_mtime)
        return newest

    def _invoke(
        self,
        args: list[str],
        manifest=None,
        queries: list | None = None,
        after_each_node: Callable[[], None] | None = None,
    ):
        from dbt.cli.main import dbtRunner

        events: list = []

        def keep_result_events(msg) -> None:
            if msg.info.name in RESULT_EVENTS:
                events.append(msg)
                if after_each_node is not None:
                    after_each_node()
            elif queries is not None and msg.info.name == SQL_EVENT:
                queries.append((msg.data.node_info.unique_id, msg.data.sql))

        with _dbt_held():  # held by the callers already (before the parse lock): re-entrant
            previous = os.environ.get("C360_WAREHOUSE")
            os.environ["C360_WAREHOUSE"] = str(self.settings.warehouse.resolve())
            try:
                runner = dbtRunner(manifest=manifest, callbacks=[keep_result_events])
                return runner.invoke([*args, *self._common_args()]), events
            finally:
                if previous is None:
                    os.environ.pop("C360_WAREHOUSE", None)
                else:
                    os.environ["C360_WAREHOUSE"] = previous

    @contextmanager
    def _target_lock(self):
        """Processes sharing C360_HOME (code server, daemon, CLI) parse one at a time."""
        self.target_dir.mkdir(parents=True, exist_ok=True)
        with open(self.target_dir / ".parse.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _parse(self) -> None:
        with _dbt_held(), self._target_lock():  # this lock first, everywhere
            result, _ = self._invoke(["parse"])
            # Read under the lock: the next parse, by another process of an edited project,
            # writes it again (this parse's fingerprint must be of this parse's manifest).
            written = json.loads(self.manifest_path.read_text()) if result.success else None
        if not result.success:
            raise DbtBuildError(
                f"dbt parse of {self.project_dir} failed: {result.exception}; "
                "run `dbt parse` in dbt/ to see why"
            )
        self._manifest = result.result
        self._manifest_dict = written
        self._fingerprint = None

    def manifest(self):
        """The parsed project, re-parsed only when a file of the dbt project changed."""
        stamp = self._project_stamp()
        if self._manifest is None or stamp != self._manifest_stamp:
            self._parse()
            self._manifest_stamp = stamp
        return self._manifest

    def manifest_dict(self) -> dict:
        """manifest.json as written by the last parse (what dagster-dbt reads)."""
        self.manifest()
        assert self._manifest_dict is not None  # read by every parse
        return self._manifest_dict

    def manifest_fingerprint(self) -> str:
        """`manifest_fingerprint` of the project as `manifest()` last returned it (not parsed
        again here, so a caller holding that manifest gets its fingerprint; computed once)."""
        if self._manifest_dict is None:
            self.manifest()
        if self._fingerprint is None:
            self._fingerprint = manifest_fingerprint(self._manifest_dict)
        return self._fingerprint

    def parsed(self) -> tuple[Any, dict, str]:
        """`manifest()`, `manifest_dict()` and `manifest_fingerprint()` of one parse: a thread
        beside the batches (the data tests) gets the three of the same parse, and the project's
        files are checked for changes once."""
        with _dbt_held():  # another thread's parse waits until the three are read
            manifest = self.manifest()
            return manifest, self._manifest_dict, self.manifest_fingerprint()

    def ensure_manifest_file(self) -> Path:
        """manifest.json, parsed now only when missing or older than the project's files."""
        path = self.manifest_path
        if not path.exists() or path.stat().st_mtime < self._project_stamp():
            self.manifest()
        return path

    def build(self, select: list[str] | None = None, extra: list[str] | None = None):
        """`dbt build [--select ...]`: models, then their tests, in dependency order."""
        args = ["build"]
        if select:
            args += ["--select", " ".join(select)]
        args += extra or []
        return self.run(args)

    def run(
        self, args: list[str], after_each_node: Callable[[], None] | None = None
    ) -> DbtBuildResult:
        """A dbt command on the cached manifest. `after_each_node` is called in dbt's thread
        as each node's result comes, before dbt goes on to the next (see `Pacer`)."""
        from dbt_common.events.functions import msg_to_dict

        manifest = self.manifest()
        started = time.monotonic()
        queries: list[tuple[str, str]] = []
        with _dbt_held(), self._target_lock():  # this lock first, everywhere
            result, events = self._invoke(
                [*args, *RUN_ARGS], manifest=manifest, queries=queries,
                after_each_node=after_each_node,
            )  # fmt: skip
        nodes, model_seconds = [], {}
        for node in getattr(result.result, "results", None) or []:
            nodes.append((node.node.unique_id, str(node.status), node.message))
            if node.node.unique_id.startswith("model."):
                model_seconds[node.node.name] = float(node.execution_time or 0.0)
        return DbtBuildResult(
            args=args,
            success=bool(result.success),
            seconds=time.monotonic() - started,
            nodes=nodes,
            events=[msg_to_dict(e) for e in events],
            error=None if result.exception is None else str(result.exception),
            queries=queries,
            model_seconds=model_seconds,
        )
