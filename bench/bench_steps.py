"""How often the offline analyzer names the step that decided a failure, beside the trivial guesses.

Why: root_cause_step is where a reader starts; a rule that always names the last step (or
the first) would look busy and say nothing. Three labelled data sets, each read through rca
as Transcripts:

- demo: `rca.demo.make_demo` runs, labelled by their scenarios (rca.demo.demo_decisive_steps);
- harness: the real run in tests/data/harness, labelled by reading each failure
  (tests/data/harness_decisive_steps.json);
- multi-agent: the Who&When logs in tests/data/multiagent, with their own mistake_step and
  mistake_agent labels (metadata only: the analyzer never sees them).

Exact: the named step is the label; within 1: off by at most one step. Agent: the agent of the
named step is the labelled agent. Run: `python bench/bench_steps.py [--seed N]`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from rca.backends.heuristic import diagnose
from rca.demo import demo_decisive_steps, make_demo
from rca.formats import get_format
from rca.store import FailureRow
from rca.traces import load_transcript
from rca.transcript import Transcript

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
HARNESS_RUN = DATA / "harness" / "2025-12-24_14-43-50"


@dataclass(frozen=True)
class Case:
    transcript: Transcript
    step: int  # the labelled decisive step
    agent: str | None = None  # the labelled agent, where the data names one


def _rows(format_name: str, path: Path, run_id: str) -> list[FailureRow]:
    return [row for row in get_format(format_name).failures(path, run_id) if isinstance(row, FailureRow)]


def demo_cases(seed: int, folder: Path) -> list[Case]:
    make_demo(folder, seed=seed)
    steps = demo_decisive_steps(folder, seed=seed)
    cases = []
    for key in sorted({k[0] for k in steps}):
        for row in _rows("harness", folder / key, key):
            step = steps[(row.run_id, row.benchmark_name, row.attempt_number)]
            if step is not None:
                cases.append(Case(load_transcript(asdict(row)), step))
    return cases


def harness_cases() -> list[Case]:
    labels = json.loads((DATA / "harness_decisive_steps.json").read_text(encoding="utf-8"))["steps"]
    return [Case(load_transcript(asdict(row)), labels[row.benchmark_name])
            for row in _rows("harness", HARNESS_RUN, HARNESS_RUN.name)]


def multiagent_cases() -> list[Case]:
    cases = []
    for row in _rows("multiagent", DATA / "multiagent", "multiagent"):
        transcript = load_transcript(asdict(row))
        labels = transcript.metadata["labels"]
        cases.append(Case(transcript, int(labels["mistake_step"]), labels.get("mistake_agent")))
    return cases


def score(cases: list[Case]) -> dict[str, float]:
    """Share of cases each guesser gets exactly and within one step, and the analyzer's agent accuracy."""
    hits = {f"{who} {how}": 0 for who in ("analyzer", "last", "first") for how in ("exact", "within 1")}
    agents = labelled = 0
    for case in cases:
        answer = diagnose(case.transcript)
        guesses = {"analyzer": answer.root_cause_step, "last": len(case.transcript.steps) - 1, "first": 0}
        for who, step in guesses.items():
            hits[f"{who} exact"] += step == case.step
            hits[f"{who} within 1"] += step is not None and abs(step - case.step) <= 1
        if case.agent is not None:
            labelled += 1
            named = answer.root_cause_agent or (case.transcript.steps[answer.root_cause_step].agent
                                                if answer.root_cause_step is not None else None)
            agents += named == case.agent
    out = {k: v / len(cases) for k, v in hits.items()}
    if labelled:
        out["agent"] = agents / labelled
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="demo seed (default 7)")
    seed = parser.parse_args().seed
    with tempfile.TemporaryDirectory() as tmp:
        sets = {f"demo (seed {seed})": demo_cases(seed, Path(tmp)), "real harness run": harness_cases(),
                "multi-agent logs (Who&When)": multiagent_cases()}
        print("| data set | failures | offline analyzer: exact / within 1 | always last | always first | agent |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name, cases in sets.items():
            s = score(cases)
            cell = {who: f"{s[f'{who} exact']:.0%} / {s[f'{who} within 1']:.0%}" for who in ("analyzer", "last", "first")}
            agent = f"{s['agent']:.0%}" if "agent" in s else "–"
            print(f"| {name} | {len(cases)} | {cell['analyzer']} | {cell['last']} | {cell['first']} | {agent} |")


if __name__ == "__main__":
    main()
