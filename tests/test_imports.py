"""`import rca` and `rca --help` stay light: no Gemini SDK, charts or notebook machinery until used.

Each check runs a fresh interpreter and lists the modules it ended up with.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("google.genai", "plotly", "IPython")
_REPORT = "import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.stderr)"
_AS_COMMAND = """import runpy, sys
sys.argv = ["rca", *{argv!r}]
try:
    runpy.run_module("rca", run_name="__main__", alter_sys=True)  # python -m rca ARGV
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""


def _modules(code: str) -> set[str]:
    proc = subprocess.run([sys.executable, "-c", f"{code}\n{_REPORT}"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(json.loads(proc.stderr.splitlines()[-1]))


def _loaded(modules: set[str], *packages: str) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in packages))


def test_import_rca_loads_nothing_heavy() -> None:
    modules = _modules("import rca")
    assert "rca" in modules
    assert _loaded(modules, *HEAVY, "pandas") == []


def test_the_analysis_api_does_not_load_the_sdk_until_gemini_is_chosen() -> None:
    modules = _modules("import rca; rca.analyze_failures; rca.load_failures")
    assert {"rca.analyze", "rca.backends.registry", "pandas"} <= modules
    assert _loaded(modules, *HEAVY) == []


def test_rca_help_loads_no_sdk_charts_notebook_or_pandas() -> None:
    modules = _modules(_AS_COMMAND.format(argv=["--help"]))
    assert "rca.cli" in modules
    assert _loaded(modules, *HEAVY, "pandas") == []


def test_rca_analyze_help_reads_the_registry_but_loads_no_sdk() -> None:
    modules = _modules(_AS_COMMAND.format(argv=["analyze", "--help"]))
    assert {"rca.options", "rca.backends.registry"} <= modules
    assert _loaded(modules, *HEAVY) == []
