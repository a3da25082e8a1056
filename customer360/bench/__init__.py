"""`c360 bench`: freshness, throughput and incremental cost of the live path, measured and plotted.

The benchmark drives the real path end to end: services from the launcher, a history seeded by
the generator, the generator's stream as load, the pipeline as `c360 up` runs it (Dagster's
sensor-started `microbatch_stream` run; or `--mode loop`, a warm micro-batch loop in its own
process), the serving copy (or the profile API) as the read path. `run.py` runs the phases,
`post_load.py` the catch-up and full refresh after the load, `probes.py` measures freshness,
`stats.py` summarises, `report.py` writes the report and its plots; README "Performance" has
the latest figures.
"""
