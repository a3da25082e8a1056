"""Which failed micro-batch runs an injected fault explains (`customer360/chaos/runs.py`), and
what the soak reports of them. Plain data: no services."""

import json

import pytest

from customer360.chaos.runs import (
    RECONNECT_GRACE_S,
    BatchRun,
    dagster_run_succeeded,
    explaining_fault,
    tally_runs,
)
from customer360.chaos.soak import ChaosConfig, ChaosReport, FaultRecord

# A Kafka restart from t=100 to t=104 (the broker answers again at 104), a SIGKILL at t=200 of the
# worker of stream run "stream-a", a daemon kill at t=250 (the new daemon beat at t=270), and the
# faults that never explain a failed run.
KAFKA = FaultRecord("kafka_restart", at=100.0, back_at=104.0)
WORKER_KILL = FaultRecord("microbatch_kill", at=200.0, back_at=200.5, process="stream-a")
DAEMON_KILL = FaultRecord("daemon_kill", at=250.0, back_at=270.0, process="dagster-daemon-42")
HARMLESS = [
    FaultRecord("serving_kill", at=300.0, back_at=302.0),
    FaultRecord("bad_records", at=310.0, back_at=311.0),
    FaultRecord("customer_churn", at=320.0, back_at=321.0),
]
FAULTS = [KAFKA, WORKER_KILL, DAEMON_KILL, *HARMLESS]


def failed(began, ended, orphaned=False, run_id="r", process="stream-a"):
    return BatchRun(run_id, began, ended, False, "boom", orphaned, process)


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
        # Its process was the one killed, while it was in flight.
        (failed(198.0, 230.0, orphaned=True), WORKER_KILL),
        # Another process died at that moment: the kill was not of its process.
        (failed(198.0, 230.0, orphaned=True, process="stream-b"), None),
        (failed(198.0, 230.0, orphaned=True, process=""), None),
        # Orphaned, but it began after the kill, or ended before it: no kill explains it.
        (failed(200.5, 230.0, orphaned=True), None),
        (failed(150.0, 199.0, orphaned=True), None),
        # Orphaned while Kafka restarted: a restart kills no process.
        (failed(99.0, 130.0, orphaned=True), None),
        # A process that died with no one seeing when (not killed by the soak).
        (failed(198.0, None, orphaned=True), None),
        # Failed by itself (not orphaned) right after the kill: a restart must be clean.
        (failed(201.0, 205.0), None),
        # The daemon executes no run: a stream run or a batch that failed across its kill is a
        # finding, whatever its process.
        (failed(240.0, 260.0, orphaned=True, process="stream-c"), None),
        (failed(240.0, 260.0, orphaned=True, process="dagster-daemon-42"), None),
        (failed(249.0, 251.0), None),
        # During a serving kill, a bad-record burst, a customer churn.
        (failed(299.0, 303.0), None),
        (failed(309.0, 312.0), None),
        (failed(319.0, 322.0), None),
    ],
)
def test_a_failed_run_is_explained_only_by_a_fault_it_overlapped(run, fault):
    assert explaining_fault(run, FAULTS) is fault


def test_a_kill_that_names_no_process_explains_nothing():
    kill = FaultRecord("microbatch_kill", at=50.0, back_at=50.3)  # process ""
    assert explaining_fault(failed(49.0, 50.1, orphaned=True, process=""), [kill]) is None


def test_a_loop_batch_killed_mid_batch_is_explained_by_the_kill():
    kill = FaultRecord("microbatch_kill", at=50.0, back_at=50.3, process="loop-1")
    # The soak records when its SIGKILL ended the process as the batch's end.
    assert explaining_fault(failed(49.0, 50.1, orphaned=True, process="loop-1"), [kill]) is kill


def test_a_succeeded_run_needs_no_explanation():
    assert explaining_fault(BatchRun("ok", 101.0, 102.0, True), FAULTS) is None


@pytest.mark.parametrize(
    ("status", "ended", "succeeded"),
    [
        ("SUCCESS", 100.0, True),  # the stream yielded to a writer queued behind it
        ("CANCELED", 500.0, True),  # terminated by the soak's stop, begun at 400
        ("CANCELED", 300.0, False),  # canceled while the soak ran
        ("FAILURE", 500.0, False),
    ],
)
def test_a_dagster_run_needs_no_explanation_when_it_succeeded_or_the_soak_stopped_it(
    status, ended, succeeded
):
    assert dagster_run_succeeded(status, ended, stop_began=400.0) is succeeded
    assert dagster_run_succeeded(status, ended, stop_began=None) is (status == "SUCCESS")


@pytest.mark.parametrize("status", ["CANCELED", "FAILURE"])
def test_a_run_requested_while_the_soak_stopped_dagster_and_never_started_did_nothing(status):
    # Terminating the stream's run at 400 lets the sensor request another at 401, which the
    # stopping daemon cancels, or fails to dequeue.
    assert dagster_run_succeeded(status, 403.0, 400.0, created=401.0, started=None)
    # Requested before the stop, or started: judged as any other run.
    assert not dagster_run_succeeded("FAILURE", 403.0, 400.0, created=399.0, started=None)
    assert not dagster_run_succeeded("FAILURE", 403.0, 400.0, created=401.0, started=402.0)


def brief_soak():
    """A Dagster soak's runs: 4 stream runs, 3 ended by the soak's SIGKILLs of their workers, the
    last canceled by the soak's stop; 6 batches logged, one of which failed on its own 60 s
    after the last fault; a daemon kill, which the stream run in flight outlived."""
    kills = [FaultRecord("microbatch_kill", at=t, back_at=t + 0.5, recovered_at=t + 40,
                         process=f"stream-{i}")
             for i, t in enumerate((20.0, 60.0, 100.0))]  # fmt: skip
    daemon = FaultRecord(
        "daemon_kill", at=120.0, back_at=140.0, recovered_at=142.0, process="dagster-daemon-7"
    )
    runs = [failed(k.at - 10, k.at + 0.4, orphaned=True, run_id=k.process, process=k.process)
            for k in kills]  # fmt: skip
    runs.append(BatchRun("stream-3", 110.0, 200.0, True, process="stream-3"))  # canceled at stop
    runs += [BatchRun(f"stream-3#{i}", 110.0 + 5 * i, 112.0 + 5 * i, True, process="stream-3")
             for i in range(1, 6)]  # fmt: skip
    runs.append(BatchRun("stream-3#6", 160.0, 163.0, False, "dbt: x", process="stream-3"))
    return [*kills, daemon], runs


def test_the_soak_counts_runs_by_cause_and_fails_on_an_unexplained_one():
    faults, runs = brief_soak()
    kills = faults[:3]
    tally = tally_runs(runs, faults)
    assert (tally.succeeded, len(tally.by_faults), len(tally.unexplained)) == (6, 3, 1)
    assert [x.run.run_id for x in tally.unexplained] == ["stream-3#6"]
    assert [x.fault for x in tally.by_faults] == kills

    report = ChaosReport(ChaosConfig(mode="dagster"), faults=faults, batch_runs=tally)
    assert not report.ok  # the end state is clean (lost, duplicates, mismatches 0)
    text = "\n".join(report.lines())
    assert "runs: 6 succeeded, 3 failed by injected faults, 1 failed unexplained" in text
    assert "FAILED UNEXPLAINED: run stream-3#6 began" in text and "dbt: x" in text
    assert "microbatch_kill  explains 1 failed run(s): stream-0;" in text
    result = json.loads(json.dumps(report.result(), default=str))
    assert result["runs"]["failed_unexplained"] == 1
    assert result["runs"]["failed_by_injected_faults"] == 3
    assert result["runs"]["succeeded"] == 6
    assert result["ok"] is False

    report.batch_runs = tally_runs(runs[:-1], faults)
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
    assert {r.process for r in runs.values()} == {"loop-1", "loop-2"}
    kill = FaultRecord("microbatch_kill", at=14.4, back_at=15.0, process="loop-1")
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


def test_a_run_whose_worker_was_killed_is_known_by_the_code_server_event():
    """Dagster's code server reports a run worker that died of a signal with an engine event,
    then fails the run (no c360/orphaned tag: the sensor never saw it STARTED)."""
    from dagster import DagsterInstance, job, op

    from customer360.chaos.pipelines import killed_by_signal

    @op
    def run_microbatches():
        pass

    @job
    def stream():
        run_microbatches()

    with DagsterInstance.ephemeral() as instance:
        killed = stream.execute_in_process(instance=instance).run_id
        run = instance.get_run_by_id(killed)
        # The code server's words (as a soak found them), abridged.
        instance.report_engine_event(
            f"[DagsterApiServer] Run execution process for {killed} was terminated by signal 9 "
            "(SIGKILL). This usually indicates that the process was killed by the operating "
            "system due to running out of memory.",
            run,
        )
        assert killed_by_signal(instance, killed)
        other = stream.execute_in_process(instance=instance).run_id
        instance.report_engine_event(
            f"Run execution process for {killed} was terminated by signal 9 (SIGKILL).",
            instance.get_run_by_id(other),
        )  # another run's words
        assert not killed_by_signal(instance, other)
