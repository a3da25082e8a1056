"""Which failed micro-batch runs an injected fault explains (`customer360/chaos/runs.py`), and
what the soak reports of them. Plain data: no services."""

import json

import pytest

from customer360.chaos.runs import RECONNECT_GRACE_S, BatchRun, explaining_fault, tally_runs
from customer360.chaos.soak import ChaosConfig, ChaosReport, FaultRecord

# A Kafka restart from t=100 to t=104 (the broker answers again at 104), a daemon kill at t=200
# (the new daemon up at t=201), and the faults that never explain a failed run.
KAFKA = FaultRecord("kafka_restart", at=100.0, back_at=104.0)
DAEMON_KILL = FaultRecord("daemon_kill", at=200.0, back_at=201.0)
HARMLESS = [
    FaultRecord("serving_kill", at=300.0, back_at=302.0),
    FaultRecord("bad_records", at=310.0, back_at=311.0),
    FaultRecord("customer_churn", at=320.0, back_at=321.0),
]
FAULTS = [KAFKA, DAEMON_KILL, *HARMLESS]


def failed(began, ended, orphaned=False, run_id="r"):
    return BatchRun(run_id, began, ended, False, "boom", orphaned)


@pytest.mark.parametrize(
    ("run", "fault"),
    [
        # In flight while the broker was down.
        (failed(98.0, 101.0), KAFKA),
        (failed(101.0, 103.0), KAFKA),
        # Began after the broker answered again, within the reconnect grace.
        (failed(104.0 + RECONNECT_GRACE_S, 104.0 + RECONNECT_GRACE_S + 2), KAFKA),
        # Began after the grace, or ended before the restart: on its own.
        (failed(104.0 + RECONNECT_GRACE_S + 0.1, 125.0), None),
        (failed(95.0, 99.9), None),
        # Orphaned by the daemon kill while in flight.
        (failed(198.0, 230.0, orphaned=True), DAEMON_KILL),
        # Orphaned, but it began after the kill, or ended before it: no kill explains it.
        (failed(200.5, 230.0, orphaned=True), None),
        (failed(150.0, 199.0, orphaned=True), None),
        # Orphaned while Kafka restarted: a restart kills no process.
        (failed(99.0, 130.0, orphaned=True), None),
        # A process that died with no one seeing when (not killed by the soak).
        (failed(198.0, None, orphaned=True), None),
        # Failed by itself (not orphaned) right after the daemon kill: a restart must be clean.
        (failed(201.0, 205.0), None),
        # During a serving kill, a bad-record burst, a customer churn.
        (failed(299.0, 303.0), None),
        (failed(309.0, 312.0), None),
        (failed(319.0, 322.0), None),
    ],
)
def test_a_failed_run_is_explained_only_by_a_fault_it_overlapped(run, fault):
    assert explaining_fault(run, FAULTS) is fault


def test_a_loop_batch_killed_mid_batch_is_explained_by_the_kill():
    kill = FaultRecord("microbatch_kill", at=50.0, back_at=50.3)
    # The soak records when its SIGKILL ended the process as the batch's end.
    assert explaining_fault(failed(49.0, 50.1, orphaned=True), [kill]) is kill


def test_a_succeeded_run_needs_no_explanation():
    assert explaining_fault(BatchRun("ok", 101.0, 102.0, True), FAULTS) is None


def brief_soak():
    """The 120 s Dagster soak that judged only the end state: 10 runs, 4 succeeded, 5 orphaned
    by the 5 daemon kills, 1 failed on its own, 60 s after the last fault."""
    kills = [FaultRecord("daemon_kill", at=t, back_at=t + 1, recovered_at=t + 40) for t in
             (20.0, 40.0, 60.0, 80.0, 100.0)]  # fmt: skip
    runs = [BatchRun(f"ok-{i}", 5.0 + 30 * i, 8.0 + 30 * i, True) for i in range(4)]
    runs += [failed(k.at - 1, k.at + 15, orphaned=True, run_id=f"orphan-{k.at:.0f}") for k in kills]
    runs.append(BatchRun("own", 160.0, 163.0, False, "microbatch: micro-batch failed: dbt: x"))
    return kills, runs


def test_the_soak_counts_runs_by_cause_and_fails_on_an_unexplained_one():
    kills, runs = brief_soak()
    tally = tally_runs(runs, kills)
    assert (tally.succeeded, len(tally.by_faults), len(tally.unexplained)) == (4, 5, 1)
    assert [x.run.run_id for x in tally.unexplained] == ["own"]
    assert sorted(x.fault.at for x in tally.by_faults) == [k.at for k in kills]

    report = ChaosReport(ChaosConfig(mode="dagster"), faults=kills, batch_runs=tally)
    assert not report.ok  # the end state is clean (lost, duplicates, mismatches 0)
    text = "\n".join(report.lines())
    assert "runs: 4 succeeded, 5 failed by injected faults, 1 failed unexplained" in text
    assert "FAILED UNEXPLAINED: run own began" in text and "dbt: x" in text
    result = json.loads(json.dumps(report.result(), default=str))
    assert result["runs"]["failed_unexplained"] == 1
    assert result["runs"]["failed_by_injected_faults"] == 5
    assert result["runs"]["succeeded"] == 4
    assert result["ok"] is False

    report.batch_runs = tally_runs(runs[:-1], kills)
    assert report.ok, "\n".join(report.lines())


def test_loop_batches_become_runs_killed_crashed_or_failed(tmp_path):
    """The loop's `begin`/`end` lines: a batch that ended, one its SIGKILLed process never
    ended, one whose process died by itself, and the one in flight now (not a run yet)."""
    from customer360.chaos.faults import BatchEvent
    from customer360.chaos.pipelines import LoopPipeline

    pipeline = LoopPipeline(None, tmp_path)
    loop = pipeline.loop
    loop.events = [
        BatchEvent("begin", 10.0, 1, {"batch": 1}),
        BatchEvent("end", 11.0, 1, {"batch": 1, "seconds": 1.0, "success": True, "errors": []}),
        BatchEvent("begin", 12.0, 1, {"batch": 2}),
        BatchEvent("end", 13.0, 1, {"batch": 2, "seconds": 1.0, "success": False,
                                    "errors": {"weblogs": "KafkaError: broker down"}}),
        BatchEvent("begin", 14.0, 1, {"batch": 3}),  # SIGKILLed at 14.5
        BatchEvent("begin", 20.0, 2, {"batch": 1}),  # process 2 died by itself
        BatchEvent("begin", 30.0, 3, {"batch": 1}),  # in flight
    ]  # fmt: skip
    loop.killed = {1: 14.5}
    loop.generation = 3
    loop.alive = lambda: True
    runs = {r.run_id: r for r in pipeline.batch_runs()}
    assert set(runs) == {"loop-1#1", "loop-1#2", "loop-1#3", "loop-2#1"}
    assert runs["loop-1#1"].succeeded
    assert runs["loop-1#2"].message == "weblogs: KafkaError: broker down"
    assert (runs["loop-1#3"].orphaned, runs["loop-1#3"].ended) == (True, 14.5)
    assert (runs["loop-2#1"].orphaned, runs["loop-2#1"].ended) == (True, None)
    kill = FaultRecord("microbatch_kill", at=14.4, back_at=15.0)
    assert explaining_fault(runs["loop-1#3"], [kill]) is kill
    assert explaining_fault(runs["loop-2#1"], [kill]) is None


def test_a_dagster_run_failure_message_names_the_micro_batch_problems():
    """Read back through the public DagsterInstance API, as the soak reads its DAGSTER_HOME."""
    from dagster import DagsterInstance, Failure, MetadataValue, job, op

    from customer360.chaos.pipelines import run_failure_message

    @op
    def microbatch_op():
        problems = "- extract weblogs: KafkaError: broker down\n- dbt: model x failed"
        raise Failure("micro-batch failed", metadata={"problems": MetadataValue.md(problems)})

    @op
    def crashing_op():
        raise ValueError("the warehouse is locked")

    @job
    def failing():
        microbatch_op()

    @job
    def crashing():
        crashing_op()

    @op
    def quiet_op():
        pass

    @job
    def quiet():
        quiet_op()

    with DagsterInstance.ephemeral() as instance:
        run_id = failing.execute_in_process(instance=instance, raise_on_error=False).run_id
        assert run_failure_message(instance, run_id) == (
            "microbatch_op: micro-batch failed: extract weblogs: KafkaError: broker down | "
            "dbt: model x failed"
        )
        run_id = crashing.execute_in_process(instance=instance, raise_on_error=False).run_id
        assert run_failure_message(instance, run_id) == (
            "crashing_op: ValueError: the warehouse is locked"
        )
        # An orphaned run, which no step failed: the sensor reports it failed with the reason.
        run_id = quiet.execute_in_process(instance=instance).run_id
        instance.report_run_failed(instance.get_run_by_id(run_id), "orphaned: process 1234 gone")
        assert run_failure_message(instance, run_id).startswith("orphaned: process 1234 gone")
