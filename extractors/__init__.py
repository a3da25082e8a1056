"""Extractors: land MongoDB change streams and Kafka records into the DuckDB warehouse."""

from extractors.batch import BatchResult
from extractors.runner import SOURCES, Extractor, extract

__all__ = ["SOURCES", "BatchResult", "Extractor", "extract"]
