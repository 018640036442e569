"""rca: the root causes of failed LLM-agent benchmark runs, read from their traces."""

from rca.ingest import IngestSummary, ingest_runs
from rca.store import connect, load_failures
from rca.traces import TraceNotFound, load_trace

__all__ = ["IngestSummary", "TraceNotFound", "connect", "ingest_runs", "load_failures", "load_trace"]
