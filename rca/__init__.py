"""rca: the root causes of failed LLM-agent benchmark runs, read from their traces.

    ingest_runs("benchmark_runs")            # run folders -> analysis_cache.db
    df = load_failures(suites=["fix_errors"])
    out = analyze_failures(df)               # Gemini when a key is set, else offline rules
"""

from rca.analyze import analyze_failures, analyze_failures_async
from rca.ingest import IngestSummary, ingest_runs
from rca.render import RenderedTrace, render_trace
from rca.schema import DEFAULT_TAXONOMY, RootCauseAnalysis, Taxonomy
from rca.store import connect, load_failures
from rca.traces import TraceNotFound, load_trace, load_transcript
from rca.transcript import Step, Transcript

__all__ = [
    "DEFAULT_TAXONOMY", "IngestSummary", "RenderedTrace", "RootCauseAnalysis", "Step", "Taxonomy", "TraceNotFound",
    "Transcript", "analyze_failures", "analyze_failures_async", "connect", "ingest_runs", "load_failures", "load_trace",
    "load_transcript", "render_trace",
]
