"""Audiences activated: every entry and exit of `marts.audience_changes` published exactly once
to the Kafka topic `audience_changes` (`publisher.py`, `c360 audiences publish`)."""
