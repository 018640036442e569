"""Run over run: what got better or worse after changing the agent.

Pure functions over frames the cache gives (rca.store.load_cases, load_failures, and the
patterns of rca.patterns): pass rates per suite and generator in each run, the cases that
newly fail, newly pass or fail in both, and the patterns that appeared, grew, shrank or
disappeared, counted in failed cases. Runs analyzed at different times compare as long as
their answers use one taxonomy; otherwise the pattern part says so and is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from rca.errors import ParameterError

CASE = ["case_key", "generator"]


@dataclass
class RunComparison:
    """Run `before` against run `after`; every frame is ready to show or export."""

    before: str
    after: str
    pass_rates: pd.DataFrame  # by (scope, name): pass rate and cases in each run, and the change
    newly_failing: pd.DataFrame
    newly_passing: pd.DataFrame
    failing_in_both: pd.DataFrame
    patterns: pd.DataFrame | None = None  # name, failed cases before and after, change, status
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.before} -> {self.after}"]
        overall = self.pass_rates[self.pass_rates["scope"] == "all"]
        for row in overall.itertuples():
            lines.append(f"  pass rate {row.before:.0%} -> {row.after:.0%} ({row.change:+.0%}), "
                         f"{row.cases_before} -> {row.cases_after} cases")
        lines.append(f"  newly failing {len(self.newly_failing)}, newly passing {len(self.newly_passing)}, "
                     f"failing in both {len(self.failing_in_both)}")
        if self.patterns is not None and len(self.patterns):
            lines.append("  patterns (failed cases):")
            for row in self.patterns.itertuples():
                lines.append(f"    {row.status:<11} {row.before:>4} -> {row.after:<4} {row.name}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _rates(cases: pd.DataFrame, run: str) -> pd.DataFrame:
    mine = cases[cases["run_id"] == run]
    parts = [mine.assign(scope="all", name="all")]
    parts += [mine.assign(scope="suite", name=mine["suite"].fillna("(none)")),
              mine.assign(scope="generator", name=mine["generator"].replace("", "(none)"))]
    joined = pd.concat(parts)
    return joined.groupby(["scope", "name"]).agg(rate=("passed", "mean"), cases=("passed", "size"))


def pass_rates(cases: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Pass rate and number of cases per scope (all, suite, generator) in each run."""
    a, b = _rates(cases, before), _rates(cases, after)
    out = a.merge(b, left_index=True, right_index=True, how="outer", suffixes=("_before", "_after")).reset_index()
    out = out.rename(columns={"rate_before": "before", "rate_after": "after"})
    out["change"] = out["after"] - out["before"]
    for column in ("cases_before", "cases_after"):
        out[column] = out[column].fillna(0).astype(int)
    order = {"all": 0, "suite": 1, "generator": 2}
    return out.sort_values(["scope", "name"], key=lambda s: s.map(order) if s.name == "scope" else s).reset_index(drop=True)


def case_changes(cases: pd.DataFrame, before: str, after: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(newly failing, newly passing, failing in both): cases present in both runs, by case and generator."""
    a = cases[cases["run_id"] == before].set_index(CASE)
    b = cases[cases["run_id"] == after].set_index(CASE)
    both = a[["passed"]].merge(b[["passed", "benchmark_name", "suite", "result"]], left_index=True,
                               right_index=True, how="inner", suffixes=("_before", "_after"))
    shown = ["benchmark_name", "suite", "result"]

    def pick(mask: pd.Series) -> pd.DataFrame:
        return both[mask][shown].reset_index()

    return (pick(both["passed_before"] & ~both["passed_after"]), pick(~both["passed_before"] & both["passed_after"]),
            pick(~both["passed_before"] & ~both["passed_after"]))


def pattern_changes(patterns: pd.DataFrame, failures: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Failed cases per pattern in each run, and whether the pattern appeared, grew, shrank or disappeared."""
    run_of = failures.set_index("id")
    rows = []
    for p in patterns.itertuples():
        members = run_of.loc[[i for i in p.failure_ids if i in run_of.index]]
        counts = {run: members[members["run_id"] == run].groupby(["benchmark_name", "generator"], dropna=False).ngroups
                  for run in (before, after)}
        a, b = counts[before], counts[after]
        status = ("appeared" if a == 0 and b else "disappeared" if b == 0 and a else
                  "grew" if b > a else "shrank" if b < a else "unchanged")
        rows.append({"name": p.name, "before": a, "after": b, "change": b - a, "status": status})
    out = pd.DataFrame(rows, columns=["name", "before", "after", "change", "status"])
    return out[(out["before"] > 0) | (out["after"] > 0)].sort_values("change", key=abs, ascending=False,
                                                                      kind="stable").reset_index(drop=True)


def compare_runs(db: str | Path, before: str, after: str, *, patterns: pd.DataFrame | None = None) -> RunComparison:
    """Compare two runs in a cache; `patterns` (rca.find_patterns over both runs) adds the pattern part."""
    from rca.store import load_cases, load_failures

    cases = load_cases(db, run_ids=[before, after])
    missing = [run for run in (before, after) if not (cases["run_id"] == run).any()]
    if missing:
        known = sorted(set(load_cases(db)["run_id"]))
        raise ParameterError(f"no cases recorded for run {', '.join(missing)}: known runs are {', '.join(known) or 'none'} "
                             "(runs ingested before cases were recorded need `rca ingest` again)")
    newly_failing, newly_passing, failing_in_both = case_changes(cases, before, after)
    result = RunComparison(before, after, pass_rates(cases, before, after), newly_failing, newly_passing,
                           failing_in_both)
    if patterns is not None:
        failures = load_failures(db, run_ids=[before, after])
        taxonomies = failures.dropna(subset=["taxonomy"]).groupby("run_id")["taxonomy"].unique()
        used = {t for values in taxonomies for t in values}
        if len(used) > 1:
            result.notes.append(f"the runs' answers use different taxonomies ({', '.join(sorted(used))}): analyze both "
                                "with one taxonomy to compare their patterns")
        else:
            result.patterns = pattern_changes(patterns, failures, before, after)
    return result
