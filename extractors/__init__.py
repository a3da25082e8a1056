"""Extractors: land MongoDB change streams and Kafka records into the DuckDB warehouse."""

from extractors.batch import BatchResult
from extractors.runner import SOURCES, Extractor

__all__ = ["SOURCES", "BatchResult", "Extractor"]
