"""Entry point for `dagster dev` / workspace.yaml and the code server `c360 up` starts: the
definitions for the configured Settings."""

from customer360.config import load_settings
from dagster_project.build import build_definitions

defs = build_definitions(load_settings())
