"""rca: the root causes of failed LLM-agent benchmark runs, read from their traces.

    ingest_runs("benchmark_runs")            # run folders -> analysis_cache.db
    df = load_failures(suites=["fix_errors"])
    out = analyze_failures(df)               # Gemini when a key is set, else offline rules

The functions load on first use, so `import rca` (and the `rca` command's --help) stays
fast and pulls in neither pandas nor the Gemini SDK until they are needed.
"""

from importlib import import_module
from typing import Any

from rca.errors import AnalysisError, InputError, RcaError, TraceNotFound

_LAZY = {
    "analyze_failures": "rca.analyze", "analyze_failures_async": "rca.analyze",
    "IngestSummary": "rca.ingest", "ingest_runs": "rca.ingest",
    "RenderedTrace": "rca.render", "render_trace": "rca.render",
    "DEFAULT_TAXONOMY": "rca.schema", "RootCauseAnalysis": "rca.schema", "Taxonomy": "rca.schema",
    "connect": "rca.store", "load_failures": "rca.store", "load_cases": "rca.store",
    "compare_runs": "rca.compare", "RunComparison": "rca.compare", "export_failures": "rca.export",
    "show_failure": "rca.show", "find_patterns": "rca.patterns",
    "load_trace": "rca.traces", "load_transcript": "rca.traces",
    "Step": "rca.transcript", "Transcript": "rca.transcript",
    "label": "rca.labels", "import_labels": "rca.labels", "agreement": "rca.agreement",
}

__all__ = sorted(["AnalysisError", "InputError", "RcaError", "TraceNotFound", *_LAZY])


def __getattr__(name: str) -> Any:
    """Import a public name's module the first time the name is used (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'rca' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
