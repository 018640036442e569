"""One failure as plain text: the case, the task, the answer, and the blamed step among its
neighbours. What `rca show` prints; the report's drill-down shows the same facts as HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rca.errors import ParameterError, TraceNotFound
from rca.formats import missing
from rca.redact import redact
from rca.render import scrub_binary, shorten, step_line
from rca.transcript import Transcript

AROUND = 2  # steps shown before and after the blamed one
STEP_CHARS = 600
TASK_CHARS = 1_200


def _present(value: Any) -> bool:
    return not missing(value) and value != ""


def _clean(text: str, limit: int) -> str:
    return shorten(scrub_binary(redact(text)), limit)


def steps_around(transcript: Transcript, step: int | None, around: int = AROUND) -> list[str]:
    """The blamed step (marked `>>`) and `around` steps on each side, each cut to STEP_CHARS."""
    if not transcript.steps:
        return ["(no steps recorded)"]
    centre = step if step is not None and 0 <= step < len(transcript.steps) else len(transcript.steps) - 1
    lines = []
    for s in transcript.steps[max(0, centre - around): centre + around + 1]:
        head, body = step_line(s, transcript)
        if s.kind == "final_answer" and transcript.final_answer:
            body = transcript.final_answer  # here there is no <final_answer> section to point to
        mark = ">>" if s.index == step else "  "
        text = _clean(body, STEP_CHARS).replace("\n", "\n       ")
        lines.append(f"{mark} [{s.index}] {redact(head)}{text}")
    return lines


def failure_text(row: dict[str, Any], transcript: Transcript | None) -> str:
    """The failure as the terminal shows it; `transcript` None when its trace cannot be read."""
    step = int(row["root_cause_step"]) if _present(row.get("root_cause_step")) else None
    lines = [f"failure {row['id']}: {redact(str(row['benchmark_name']))}",
             f"  run {row.get('run_id')} · suite {row.get('suite') or '—'} · generator {row.get('generator') or '—'}"
             f" · attempt {row.get('attempt_number') if _present(row.get('attempt_number')) else '—'}"]
    if transcript is not None and transcript.task:
        lines += ["", "task:", "  " + _clean(transcript.task, TASK_CHARS).replace("\n", "\n  ")]
    if _present(row.get("category")):
        lines += ["", f"root cause: {row['category']}"
                  + (f" (confidence {row['confidence']:.2f})" if _present(row.get("confidence")) else "")]
        for label, key in (("why", "root_cause_explanation"), ("expected", "expected_behavior"),
                           ("actual", "actual_behavior"), ("agent", "root_cause_agent"), ("fix", "fix")):
            if _present(row.get(key)):
                lines.append(f"  {label}: {redact(str(row[key]))}")
    else:
        lines += ["", "root cause: not analyzed yet (rca analyze)"]
    if transcript is not None:
        where = f"step [{step}]" if step is not None else "the last step"
        lines += ["", f"{where} and its neighbours:", *("  " + line for line in steps_around(transcript, step))]
    evidence = row.get("evidence") if isinstance(row.get("evidence"), list) else []
    if evidence:
        lines += ["", "evidence:"]
        lines += [f"  [{e.get('step') if e.get('step') is not None else '-'}] {redact(str(e.get('quote', '')))}"
                  for e in evidence if isinstance(e, dict)]
    if _present(row.get("raw_error")):
        lines += ["", "error:", "  " + _clean(str(row["raw_error"]), 800).replace("\n", "\n  ")]
    return "\n".join(lines)


def show_failure(db: str | Path, failure_id: int, *, runs_dir: str | Path | None = None) -> str:
    """`failure_text` for the failure with this id in the cache."""
    from rca.store import load_failures
    from rca.traces import load_transcript

    frame = load_failures(db)
    match = frame[frame["id"] == failure_id]
    if match.empty:
        raise ParameterError(f"no failure {failure_id} in {db}: ids run from {frame['id'].min()} to {frame['id'].max()}"
                             if len(frame) else f"no failure {failure_id} in {db}: the cache holds no failures")
    row = match.iloc[0].to_dict()
    try:
        transcript: Transcript | None = load_transcript(row, runs_dir=runs_dir)
    except (TraceNotFound, OSError) as exc:
        transcript = None
        row["raw_error"] = f"{row.get('raw_error') or ''}\n(trace not readable: {exc})"
    return failure_text(row, transcript)
