"""The stream's EventReporter: rounds of writes at most every `every_s`, events of one asset
merged while they wait, and what is pending written at once when the stream ends."""

from __future__ import annotations

import threading
import time

from dagster import AssetKey, AssetMaterialization, MetadataValue

from dagster_project.stream import EventReporter


class RecordingInstance:
    """Stands in for DagsterInstance.report_runless_asset_event (the one call the reporter
    makes)."""

    def __init__(self):
        self.written: list[AssetMaterialization] = []
        self.first = threading.Event()

    def report_runless_asset_event(self, event: AssetMaterialization) -> None:
        self.written.append(event)
        self.first.set()


def landed(records: int) -> AssetMaterialization:
    return AssetMaterialization(
        AssetKey(["raw", "weblogs"]), metadata={"records": MetadataValue.int(records)}
    )


def test_events_wait_for_the_next_round_merged_and_are_written_on_exit():
    instance = RecordingInstance()
    reporter = EventReporter(instance, every_s=3600)  # type: ignore[arg-type]
    with reporter:
        reporter.report([landed(5)])
        assert instance.first.wait(10), "the first round is written at once"
        reporter.report([landed(7)])
        reporter.report([landed(11), AssetMaterialization(AssetKey(["marts", "customer_360"]))])
        time.sleep(0.2)
        assert len(instance.written) == 1  # the next round waits for every_s
        started = time.monotonic()
    assert time.monotonic() - started < 10  # ending the stream does not wait for the round
    first, *rest = instance.written
    assert first.metadata["records"].value == 5
    by_key = {e.asset_key.to_user_string(): e for e in rest}
    assert set(by_key) == {"raw/weblogs", "marts/customer_360"}
    merged = by_key["raw/weblogs"].metadata
    assert merged["records"].value == 18 and merged["batches_merged"].value == 2
