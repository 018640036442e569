"""The analysis options, declared once: name, default, one-line help.

analyze_failures, `rca analyze` and the report notebook (its parameters cell, and
report.prepare behind it) take the same options. rca.cli builds the command's flags from
OPTIONS and rca.notebook the parameters cell, and a test holds the Python functions'
defaults to these, so a default or a help text changes here and nowhere else.

The notebook's own `runs_dir` is not the option below: there it names the folder to ingest
first, with the demo's folder as default, so the notebook declares it beside `db_path`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rca.backends.registry import AUTO, backend_names
from rca.errors import ParameterError


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    kind: type = str  # what a value given as text (a command-line flag) becomes
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    notebook: bool = True  # also a parameter of the report notebook

    def check(self, value: Any) -> Any:
        """The value as this option takes it (text is converted), or ParameterError saying what to set."""
        if self.choices and value not in self.choices:
            raise ParameterError(f"unknown {self.name} {value!r}: use one of {', '.join(map(repr, self.choices))}")
        if self.minimum is not None:
            return number(value, self.name, self.kind, self.minimum)
        return value


def number(value: Any, name: str, kind: type, minimum: float) -> Any:
    """`value` as a number of `kind` >= minimum (None stays None): papermill and people pass "8", 8.0 or 8."""
    if value is None:
        return None
    try:
        converted = kind(value)
    except (TypeError, ValueError):
        converted = None
    if converted is None or isinstance(value, bool) or converted < minimum:
        raise ParameterError(f"{name} must be a number >= {minimum}, got {value!r}")
    return converted


OPTIONS: tuple[Option, ...] = (
    Option("backend", AUTO, "auto: Gemini when an API key is set, else the offline heuristic", choices=backend_names()),
    Option("model", None, "Gemini model; by default $RCA_MODEL, else rca's default model"),
    Option("concurrency", 8, "rows in progress at once, so at most this many Gemini calls in flight", kind=int, minimum=1),
    Option("force", False, "analyze again even when a cached answer exists", kind=bool),
    Option("dry_run", False, "estimate tokens and cost; call nothing", kind=bool, notebook=False),
    Option("budget_usd", None, "stop calling Gemini once this much is spent", kind=float, minimum=0),
    Option("taxonomy", "default", "a built-in name, or a .yaml/.json file of categories"),
    Option("timeout", 120.0, "seconds one model request may take before it is retried", kind=float, minimum=1),
    Option("price", None, "USD per 1M input,output tokens for a model the price data does not know, e.g. 0.5,3"),
    Option("runs_dir", None, "where to look for traces whose recorded path has moved", notebook=False),
)
OPTION: dict[str, Option] = {option.name: option for option in OPTIONS}
