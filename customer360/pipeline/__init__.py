"""The micro-batch pipeline: extract what is new, build the dbt models it feeds, publish.

Plain Python, usable without Dagster (`c360 run-once`); the Dagster job in `dagster_project`
calls the same `MicroBatch` methods.
"""

from customer360.pipeline.microbatch import MicroBatch, MicroBatchResult

__all__ = ["MicroBatch", "MicroBatchResult"]
