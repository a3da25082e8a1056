"""Chaos soak: the live pipeline under a steady stream and injected faults, then proof.

`c360 chaos` (see `soak.run_chaos`) streams records into Mongo and Kafka, runs the micro-batch
loop as a subprocess (`python -m customer360.chaos.loop`), injects faults at random moments
(`faults`), lets the pipeline drain, and checks that raw holds every produced record exactly
once, that the marts equal a full refresh and an independent plain-Python oracle (`oracle`)
computed from what Kafka and MongoDB hold, and that the serving copy says the same (`verify`).
It also counts the micro-batch runs that failed: those an injected fault explains, and the
others, any of which fails the soak (`runs`).
"""
