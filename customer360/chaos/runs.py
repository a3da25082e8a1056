"""Every micro-batch run of a soak, and why each failed one failed: an injected fault, or not.

The soak's other checks judge the end state, which a pipeline that fails half its batches and
catches up in the rest still passes. Here each failed run is either explained by a fault the
soak injected (`explaining_fault`, the one attribution rule) or counted as unexplained, which
fails the soak. A "run" is a unit of micro-batch work the soak can see end:

- loop mode: one batch of the loop process;
- Dagster mode: a run of the `microbatch_stream` job (the long-running run doing batches back
  to back, ended by a kill of its process, by a writer queued behind it, or by the soak's
  stop), each batch such a run logged (`customer360/bench/dagster_stream.py`), and a run of any
  other job.

Plain data: the pipelines (`customer360/chaos/pipelines.py`) build the `BatchRun`s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

# SIGKILLs of the process executing micro-batches (the loop process, or the stream run's worker):
# the only faults that explain a run whose process died under it. The daemon kill
# (`daemon_kill`) is not one: see `explaining_fault`.
RUN_PROCESS_KILLS = ("microbatch_kill",)
# Restarts of a service every micro-batch reads.
SERVICE_RESTARTS = ("kafka_restart", "mongo_restart")
# A restarted broker or server answers again at the fault's `back_at`; the pipeline's clients
# notice and reconnect within their backoff (librdkafka's reconnect.backoff.max.ms is 10 s), so
# a run that began up to this long after `back_at` may still fail on the restart.
RECONNECT_GRACE_S = 15.0


class Fault(Protocol):
    """What the rule reads of an injected fault (`soak.FaultRecord`)."""

    kind: str
    at: float  # injected (epoch seconds)
    back_at: float  # the injection finished: the service answers again, the process restarted
    process: str  # for a process kill, the process it killed, named as `BatchRun.process`


@dataclass(frozen=True)
class BatchRun:
    """One finished micro-batch run as the soak saw it (times in epoch seconds)."""

    run_id: str
    began: float  # started executing (a Dagster run never started: when it was created)
    ended: float | None  # finished; None for a run whose process died and no one saw when
    succeeded: bool
    message: str = ""  # why it failed
    # Its process died under it: a Dagster run that Dagster's code server found killed by a
    # signal, or that the sensor marked failed with the tag c360/orphaned; a loop batch that
    # began and never ended.
    orphaned: bool = False
    # The process that executed it: "loop-<n>" for the loop's n-th process, the stream run's id
    # for a Dagster stream run (its run worker) and for the batches it logged.
    process: str = ""


@dataclass(frozen=True)
class FailedRun:
    run: BatchRun
    fault: Fault | None  # the injected fault that explains it; None: unexplained


@dataclass
class RunTally:
    succeeded: int = 0
    by_faults: list[FailedRun] = field(default_factory=list)
    unexplained: list[FailedRun] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"runs: {self.succeeded} succeeded, {len(self.by_faults)} failed by injected faults, "
            f"{len(self.unexplained)} failed unexplained"
        )


def explaining_fault(run: BatchRun, faults: Iterable[Fault]) -> Fault | None:
    """The injected fault that explains why `run` failed, or None: the soak's attribution rule.

    - A run whose process died under it (`orphaned`) is explained only by a SIGKILL of that very
      process (`kill.process == run.process`: the loop process, or the stream run's worker)
      injected while the run was in flight: `run.began <= kill.at <= run.ended`.
    - Any other failed run (a batch that failed, a run whose step failed) is explained only by
      a Kafka or MongoDB restart it overlapped: it ended no earlier than the restart began
      (`restart.at <= run.ended`) and began no later than RECONNECT_GRACE_S after the service
      answered again (`run.began <= restart.back_at + RECONNECT_GRACE_S`).

    Nothing else explains a failure, so the rule errs towards "unexplained": not a serving
    kill, a bad-record burst or customer churn (the pipeline must take those in its stride);
    not a SIGKILL of the dagster-daemon: it executes no run (runs execute in run workers of
    their own, children of the code server, which the daemon's death leaves running), so a
    stream run must outlive it, and one that does not is a finding; not a kill of another
    process, nor a kill for a run that was not orphaned (a restarted process must start clean);
    not a restart for an orphaned run (a restart kills no process), nor for a run that began
    more than RECONNECT_GRACE_S after the service was back; not a run whose end no one saw (its
    process died without the soak killing it).
    """
    if run.succeeded or run.ended is None:
        return None
    for fault in faults:
        if run.orphaned:
            if (
                fault.kind in RUN_PROCESS_KILLS
                and fault.process
                and fault.process == run.process
                and run.began <= fault.at <= run.ended
            ):
                return fault
        elif fault.kind in SERVICE_RESTARTS:
            if fault.at <= run.ended and run.began <= fault.back_at + RECONNECT_GRACE_S:
                return fault
    return None


def dagster_run_succeeded(
    status: str,
    ended: float | None,
    stop_began: float | None,
    created: float = 0.0,
    started: float | None = 0.0,
) -> bool:
    """Whether a finished Dagster run needs no explanation:

    - it ended SUCCESS (the stream's run does when a writer queued behind it makes it yield);
    - or it ended CANCELED by the soak's own stop, which terminates the runs in flight through
      Dagster as `c360 up` does on Ctrl-C (`ended >= stop_began`);
    - or the sensor requested it while the soak was stopping Dagster (`created >= stop_began`)
      and it never started: terminating the stream's run lets the still-running sensor request
      the next one, which the stopping daemon then cancels or fails to dequeue. It did nothing.

    Any other end (FAILURE, CANCELED during the soak) is a failure to explain.
    """
    if status == "SUCCESS":
        return True
    if stop_began is None:
        return False
    if started is None and created >= stop_began:
        return True
    return status == "CANCELED" and (ended or 0.0) >= stop_began


def tally_runs(runs: Sequence[BatchRun], faults: Sequence[Fault]) -> RunTally:
    """Succeeded runs counted; failed ones split by `explaining_fault`."""
    tally = RunTally()
    for run in sorted(runs, key=lambda r: r.began):
        if run.succeeded:
            tally.succeeded += 1
            continue
        fault = explaining_fault(run, faults)
        (tally.unexplained if fault is None else tally.by_faults).append(FailedRun(run, fault))
    return tally
