"""The offline analyzer's `fix`: one concrete change to the agent, built from what a rule found.

A fix names the thing to change (an instruction, a tool's description, the run's
configuration) and the specifics the trace showed (the tool, the argument, the invented
name, the field the schema rejects), so it can be applied as written.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

_INFRA_FIXES = (  # the fault's sign -> the configuration change that avoids it
    (re.compile(r"(?i:429|RESOURCE_EXHAUSTED|ResourceExhausted|quota|rate.?limit)"),
     "Give the run more model quota (another key or a higher tier), or let the agent's client retry 429s "
     "with backoff for longer before the attempt fails"),
    (re.compile(r"(?i:deadline|timeout|timed out)"),
     "Raise the agent run's time limit and the model call's deadline, or cap the agent's steps so it finishes in time"),
    (re.compile(r"(?i:libpod|/containers/|OCI runtime|failed with code 12[56])"),
     "Repair the sandbox's container runtime (the exec call into the agent's container failed) before re-running"),
    (re.compile(r"(?i:50[0234]|UNAVAILABLE|overloaded|ServerError|ServiceUnavailable)"),
     "Retry model calls that fail with 5xx or 'overloaded' with backoff, or fall back to a second model"),
)
_REQUIRED = re.compile(r"required property '(\w+)'|missing \d+ required (?:positional )?argument: '(\w+)'")
_FIELDS = re.compile(r"^[ \t]+(\w+)[ \t]*:", re.MULTILINE)  # a class body's field declarations


def infra_fix(sign: str) -> str:
    return next((fix for pattern, fix in _INFRA_FIXES if pattern.search(sign)),
                f"Retry the agent's model and tool calls on transient faults such as {sign[:60]!r}")


def schema_fix(what: str, field: str | None, problem: str | None, sign: str) -> str:
    """`problem` is pydantic's "Field required" / "Extra inputs are not permitted" for `field`."""
    if field and problem and problem.startswith("Extra"):
        return f"Add to the instructions that the answer has only the fields of {what}: no `{field}`"
    if field and problem:
        return f"Add to the instructions that {what} requires the field `{field}`"
    if "create_agent" in sign or "Signature" in sign:
        return "Add to the instructions that the `code` field must define `create_agent(model_name)`"
    if re.search(r"(?i:no JSON object)", sign):
        return f"Instruct the agent to end with exactly one JSON object matching {what}, not prose"
    return f"Instruct the agent to emit strict JSON for {what}: double-quoted keys and strings, nothing around it"


def misuse_fix(tool: str, why: str | None, args: Any, output: str) -> str:
    """From the first failing call: the tool, what went wrong, its arguments and its output."""
    if why == "read a directory as a file":
        return f"Instruct the agent to list a directory before reading files in it, and to give {tool} file paths only"
    if why == "listed a file as a directory":
        return f"Instruct the agent to give {tool} directories only, and to read files with the file tool"
    if why == "passed an invalid regex":
        return (f"Add to {tool}'s description that its pattern is a regular expression: escape `(`, `[` and `*` "
                "when searching for literal code")
    if why == "called a tool that does not exist":
        return f"List the agent's tools in its instructions: `{tool}` is not one of them"
    if why == "passed arguments the tool does not take":
        m = _REQUIRED.search(output)
        wanted = next((g for g in m.groups() if g), None) if m else None
        given = ", ".join(f"`{k}`" for k in args) if isinstance(args, dict) and args else None
        if wanted:
            return f"Add to {tool}'s description that it takes `{wanted}`" + (f", not {given}" if given else "")
        return f"Give the agent {tool}'s exact signature in the tool's description"
    return "Instruct the agent to list a directory before reading files in it, instead of guessing paths"


def starved_fix(tools: list[str], symbols: list[str]) -> str:
    guessed = f": it guessed `{symbols[0]}`" if symbols else ""
    if not tools:
        look = (f"read `{symbols[0].rpartition('.')[0]}`'s source" if symbols and "." in symbols[0]
                else "gather the facts the task needs (read the files, run the code)")
        return f"Instruct the agent to {look} with its tools before answering, not to answer from memory{guessed}"
    return (f"Instruct the agent, when {', '.join(tools)} find nothing, to list the source tree and read the files "
            f"it needs instead of answering{guessed}")


def for_agent(fix: str, agent: str | None) -> str:
    """The fix addressed to the agent that decided, when several act: its instructions are the ones to change."""
    return fix.replace("the agent", agent, 1) if agent else fix


def _field_near(leaf: str, owner: str, seen: str) -> str | None:
    """A field of class `owner`, in the source the tools showed, whose name is close to `leaf`."""
    at = seen.find(f"class {owner}(") if owner else -1
    if at < 0:
        return None
    body = seen[at: at + 8_000]
    nxt = body.find("\nclass ", 1)
    names = [n for n in dict.fromkeys(_FIELDS.findall(body[: nxt if nxt > 0 else None])) if n != leaf]
    close = difflib.get_close_matches(leaf, names, n=1, cutoff=0.6)
    return close[0] if close else None


def invented_fix(leaf: str, owner: str, seen: str, tools: str) -> str:
    """`seen` is the useful tool output: a real name close to the invented one makes the fix exact."""
    owner_leaf = owner.rpartition(".")[2]
    if real := _field_near(leaf, owner_leaf, seen):
        return f"Add to the instructions that {owner_leaf}'s field is `{real}`, not `{leaf}`"
    where = f"{owner_leaf} has no `{leaf}`" if owner_leaf else f"`{leaf}` does not exist"
    return f"Add to the instructions that {where}, and have the agent use only names that {tools} showed"


def loop_fix(tool: str, args: str) -> str:
    return (f"Instruct the agent to change the arguments or the tool after a failing {tool} call, "
            f"instead of repeating {tool} {args[:60]}")


def choice_fix(expected: str, got: str) -> str:
    return (f"Instruct the agent to test each option against the source it read before choosing "
            f"(it chose {got!r}; {expected!r} was right)")


def assertion_fix(sign: str | None, answered: str | None) -> str:
    """`answered` is the rejected answer when the harness quotes it; `sign` the line saying what failed."""
    if answered:
        return f"Instruct the agent to confirm in the source that `{answered}` does what the task asks, not only that it exists"
    if sign:
        cut = sign if len(sign) <= 100 else sign[:100].rsplit(" ", 1)[0] + " …"
        return f"Instruct the agent to check its answer against the task's test before answering ({cut})"
    return "Instruct the agent to check its answer against the task's requirements before answering"
