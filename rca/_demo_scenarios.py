"""The stories behind rca's demo runs: a small fake ADK repo the demo agents browse, the
benchmark cases, and one function per root cause that scripts what an agent did and how
its attempt ended.

Each scenario is written so a careful reader of the trace can tell its cause, while the
error text alone often points elsewhere (that gap is what rca is for). Tool outputs are
computed from the fake repo, so a search either really finds a line or really does not.
"""

from __future__ import annotations

import ast
import json
import random
import re
import textwrap
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

# The names of rca.schema.DEFAULT_TAXONOMY, so ground truth compares with analyzer output as is.
STARVATION, HALLUCINATION, MISUSE = "Context Starvation", "Hallucination", "Tool Misuse"
SCHEMA, LOGIC, INFRA = "Schema Violation", "Logic Error", "Infrastructure"
CATEGORIES = (STARVATION, HALLUCINATION, MISUSE, SCHEMA, LOGIC, INFRA)

ROOT = "repos/adk-python"
AGENTS = f"{ROOT}/src/google/adk/agents"
SUITES = ("fix_errors", "api_understanding", "configure_adk_features_mc", "diagnose_setup_errors_mc",
          "predict_runtime_behavior_mc")


# --- the fake repo -------------------------------------------------------------------

# class -> (module, base, [(field, type, default, doc)], body of _run_async_impl)
CLASSES: dict[str, tuple[str, str, list[tuple[str, str, str, str]], str]] = {
    "BaseAgent": ("base_agent", "BaseModel", [
        ("name", "str", "", "The agent's name. Must be a Python identifier and unique within the agent tree."),
        ("description", "str", "''", "Description about the agent's capability, used by the model to pick a delegate."),
        ("parent_agent", "Optional[BaseAgent]", "Field(default=None, init=False)", "The parent agent of this agent."),
        ("sub_agents", "list[BaseAgent]", "Field(default_factory=list)", "The sub-agents of this agent."),
        ("before_agent_callback", "Optional[BeforeAgentCallback]", "None", "Callback invoked before the agent run."),
        ("after_agent_callback", "Optional[AfterAgentCallback]", "None", "Callback invoked after the agent run."),
    ], "raise NotImplementedError(f'_run_async_impl for {type(self)} is not implemented.')\nyield  # AsyncGenerator requires a yield"),
    "LlmAgent": ("llm_agent", "BaseAgent", [
        ("model", "Union[str, BaseLlm]", "''", "The model to use for the agent. Inherited from the ancestor when empty."),
        ("instruction", "Union[str, InstructionProvider]", "''", "Instructions for the LLM model, guiding the agent's behavior."),
        ("global_instruction", "Union[str, InstructionProvider]", "''", "Instructions for all the agents in the tree; root agent only."),
        ("tools", "list[ToolUnion]", "Field(default_factory=list)", "Tools available to this agent. Plain functions are wrapped as FunctionTool."),
        ("generate_content_config", "Optional[types.GenerateContentConfig]", "None", "Additional content generation configurations."),
        ("planner", "Optional[BasePlanner]", "None", "Instructs the agent to make a plan and execute it step by step."),
        ("output_schema", "Optional[type[BaseModel]]", "None", "The output schema when the agent replies; disables tool use."),
        ("output_key", "Optional[str]", "None", "The key in session state to store the output of the agent."),
        ("include_contents", "Literal['default', 'none']", "'default'", "Whether to include contents in the model request."),
        ("before_model_callback", "Optional[BeforeModelCallback]", "None", "Called before calling the LLM; a returned LlmResponse skips the call."),
        ("after_model_callback", "Optional[AfterModelCallback]", "None", "Called after calling the LLM; may replace the response."),
    ], "async for event in self._llm_flow.run_async(ctx):\n  self.__maybe_save_output_to_state(event)\n  yield event\n"
       "if self.output_key and ctx.session.state.get(self.output_key) is None:\n  logger.debug('no final response for %s', self.name)"),
    "LoopAgent": ("loop_agent", "BaseAgent", [
        ("max_iterations", "Optional[int]", "None", "The maximum number of iterations to run the loop agent.\n\nIf not set, the loop agent will run indefinitely until a sub-agent escalates."),
    ], "times_looped = 0\nwhile not self.max_iterations or times_looped < self.max_iterations:\n  for sub_agent in self.sub_agents:\n"
       "    async for event in sub_agent.run_async(ctx):\n      yield event\n      if event.actions.escalate:\n        return\n  times_looped += 1"),
    "SequentialAgent": ("sequential_agent", "BaseAgent", [],
       "for sub_agent in self.sub_agents:\n  async for event in sub_agent.run_async(ctx):\n    yield event"),
    "ParallelAgent": ("parallel_agent", "BaseAgent", [],
       "agent_runs = [sub_agent.run_async(_create_branch_ctx_for_sub_agent(self, sub_agent, ctx))\n"
       "              for sub_agent in self.sub_agents]\nasync for event in _merge_agent_run(agent_runs):\n  yield event"),
}

LICENSE = "\n".join(["# Copyright 2025 Google LLC", "#",
                     '# Licensed under the Apache License, Version 2.0 (the "License");',
                     "# you may not use this file except in compliance with the License.",
                     "# You may obtain a copy of the License at", "#",
                     "#     http://www.apache.org/licenses/LICENSE-2.0", "#",
                     "# Unless required by applicable law or agreed to in writing, software",
                     '# distributed under the License is distributed on an "AS IS" BASIS,',
                     "# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.",
                     "# See the License for the specific language governing permissions and",
                     "# limitations under the License."])


def _source(cls: str) -> str:
    """A few KB of plausible ADK source: enough that a reader must look for the one field."""
    module, base, fields, body = CLASSES[cls]
    lines = [LICENSE, "", "from __future__ import annotations", "", "import logging",
             "from typing import Any, AsyncGenerator, Literal, Optional, Union", "",
             "from google.genai import types", "from pydantic import BaseModel, ConfigDict, Field",
             "from typing_extensions import override", "", "from ..events.event import Event",
             "from .invocation_context import InvocationContext"]
    if base != "BaseModel":
        lines.append("from .base_agent import BaseAgent")
    lines += ["", "logger = logging.getLogger('google_adk.' + __name__)", "", "",
              f"class {cls}({base}):", f'  """{cls}: see the ADK docs for {module}."""', "",
              "  model_config = ConfigDict(arbitrary_types_allowed=True, extra='forbid')", ""]
    for name, typ, default, doc in fields:
        lines.append(f"  {name}: {typ}" + (f" = {default}" if default else ""))
        lines += ['  """' + doc.replace("\n", "\n  ") + '"""', ""]
    lines += ["  @override", "  async def _run_async_impl(", "      self, ctx: InvocationContext",
              "  ) -> AsyncGenerator[Event, None]:", textwrap.indent(body, "    "), "",
              "  @override", "  async def _run_live_impl(", "      self, ctx: InvocationContext",
              "  ) -> AsyncGenerator[Event, None]:",
              "    raise NotImplementedError(f'This is not supported yet for {cls}.')", "    yield", "",
              "  @classmethod", "  @override", "  def _parse_config(cls, config: Any, config_abs_path: str, kwargs: dict[str, Any]) -> dict[str, Any]:",
              '    """Maps the YAML agent config onto constructor keyword arguments."""']
    for name, *_ in fields:
        lines += [f"    if config.{name} is not None:", f"      kwargs['{name}'] = config.{name}"]
    return "\n".join(lines + ["    return kwargs", ""])


FILES: dict[str, str] = {f"{AGENTS}/{mod}.py": _source(cls) for cls, (mod, *_r) in CLASSES.items()}
FILES[f"{AGENTS}/__init__.py"] = LICENSE + "\n\n" + "\n".join(
    f"from .{mod} import {cls}" for cls, (mod, *_r) in CLASSES.items()) + "\n\n__all__ = [\n" + "".join(
    f"    '{c}',\n" for c in [*CLASSES, "InvocationContext", "LiveRequest", "LiveRequestQueue", "RunConfig"]) + "]\n"
DIRS: dict[str, list[str]] = {
    ROOT: ["[DIR] contributing", "[DIR] docs", "[DIR] src", "[DIR] tests", "CHANGELOG.md", "README.md", "pyproject.toml"],
    f"{ROOT}/docs": [],
    f"{ROOT}/src/google/adk": ["[DIR] agents", "[DIR] events", "[DIR] models", "[DIR] tools", "runners.py"],
    AGENTS: ["[DIR] config_schemas", "__init__.py", "callback_context.py", "invocation_context.py",
             *sorted(f"{m}.py" for m, *_r in CLASSES.values()), "run_config.py"],
}


def run_tool(tool: str, args: dict[str, Any]) -> str:
    """What the agent's tool would have answered, computed from the fake repo."""
    if tool == "list_directory":
        if "path" not in args:
            return "Error: params must have required property 'path'"
        entries = DIRS.get(args["path"].rstrip("/"))
        if entries is None:
            return f"Error: Directory not found: {args['path']}"
        return f"Directory listing for {args['path']}:\n" + "\n".join(entries) if entries else f"Directory {args['path']} is empty."
    if tool == "read_file":
        if "file_path" not in args:
            return "Error: params must have required property 'file_path'"
        path = args["file_path"]
        if path.rstrip("/") in DIRS:
            return f"Error: EISDIR: illegal operation on a directory, read '{path}'"
        return FILES.get(path, f"Error: File not found: {path}")
    if tool == "search_file_content":
        pattern, where = args.get("pattern", ""), args.get("path", ROOT)
        try:
            rx = re.compile(pattern)
        except re.error as exc:
            return f"Error: Invalid regular expression: /{pattern}/: {exc}"
        hits = [(p, n, line) for p, text in FILES.items() if p.startswith(where)
                for n, line in enumerate(text.splitlines(), 1) if rx.search(line)]
        if not hits:
            return f'No matches found for pattern "{pattern}" in path "{where}".'
        out = [f'Found {len(hits)} matches for pattern "{pattern}" in path "{where}":', "---"]
        for path in dict.fromkeys(p for p, _n, _l in hits):
            out += [f"File: {path[len(where):].lstrip('/')}"] + [f"L{n}: {line}" for p, n, line in hits if p == path] + ["---"]
        return "\n".join(out)
    if tool == "glob":
        found = [p for p in FILES if re.search(args.get("pattern", "").replace("**/", "").replace("*", ".*") + "$", p)]
        return (f'Found {len(found)} file(s) matching "{args.get("pattern")}":\n' + "\n".join(found)) if found else \
            f'No files found matching pattern "{args.get("pattern")}" within {ROOT}.'
    return f'Error: Tool "{tool}" not found in registry. Available tools: list_directory, read_file, search_file_content, glob'


# --- the benchmark cases --------------------------------------------------------------

@dataclass(frozen=True)
class Topic:
    """One ADK feature a case is about: the real parameter, a plausible fake, and a logic bug."""
    cls: str
    field: str
    ftype: str
    value: str
    fake: str
    fake_cls: str
    purpose: str
    fix_name: str
    prelude: str
    bug: str
    assertion: str
    behaviour: str
    vague: tuple[str, str]  # searches a starved agent tries: well formed, but nothing in the repo matches
    kwargs: str = ""        # other constructor arguments the working code needs


TOPICS = (
    Topic("LlmAgent", "instruction", "str", '"Greet the user. Always include the word Hello."', "system_prompt", "SuperAgent",
          "the system instruction that guides the model", "01: A minimal LlmAgent.", "", '"Greet the user warmly."',
          "AssertionError: Expected the reply to contain 'Hello'\nassert 'Hello' in 'Greetings, traveller! How can I help you today?'",
          "It is sent as the system instruction with every model request.", ("persona prompt", "system message")),
    Topic("LlmAgent", "tools", "list[ToolUnion]", "[get_weather]", "tool_functions", "ToolAgent",
          "registering the Python functions the model may call", "02: An LlmAgent with a simple function tool.",
          'def get_weather(city: str) -> dict:\n  return {"city": city, "forecast": "sunny"}', "[]",
          "AssertionError: Expected a function_call to 'get_weather'\nassert 'get_weather' in []",
          "Plain Python functions are wrapped as FunctionTool automatically.", ("register_function", "callable tools"),
          'instruction="Answer the user."'),
    Topic("LlmAgent", "output_key", "Optional[str]", '"weather"', "state_key", "StatefulAgent",
          "saving the agent's final reply into session state", "05: An LlmAgent that saves its reply to session state.",
          "", '"forecast"', "AssertionError: assert None == 'sunny'\n +  where None = <built-in method get of dict object at 0x7f3a2c1b9e40>('weather')",
          "The final text reply is written to session.state under that key.", ("save_to_state", "persist reply"),
          'instruction="Answer the user."'),
    Topic("LoopAgent", "max_iterations", "Optional[int]", "3", "max_loops", "RepeatAgent",
          "capping how many times the sub-agents are run", "06: A LoopAgent that stops after three iterations.",
          'counter = LlmAgent(name="counter", model=model_name, instruction="Add one to the count.")', "5",
          "AssertionError: Expected the loop to stop after 3 iterations, got 5\nassert 5 == 3",
          "The loop stops after that many passes unless a sub-agent escalates first.", ("loop termination", "stop_after"),
          "sub_agents=[counter]"),
    Topic("SequentialAgent", "sub_agents", "list[BaseAgent]", "[writer, reviewer]", "steps", "PipelineAgent",
          "the ordered agents that run one after another", "07: A SequentialAgent pipeline of writer and reviewer.",
          'writer = LlmAgent(name="writer", model=model_name, instruction="Draft a haiku.")\n'
          'reviewer = LlmAgent(name="reviewer", model=model_name, instruction="Review the haiku.")', "[reviewer, writer]",
          "AssertionError: assert ['reviewer', 'writer'] == ['writer', 'reviewer']\n  At index 0 diff: 'reviewer' != 'writer'",
          "Sub-agents run one after another in list order, sharing one session.", ("pipeline stages", "run_in_order")),
    Topic("ParallelAgent", "sub_agents", "list[BaseAgent]", "[weather, news]", "branches", "ConcurrentAgent",
          "the agents that run concurrently on the same input", "09: A ParallelAgent that gathers weather and news.",
          'weather = LlmAgent(name="weather", model=model_name, instruction="Report the weather.", output_key="weather")\n'
          'news = LlmAgent(name="news", model=model_name, instruction="Report the news.", output_key="news")', "[weather]",
          "AssertionError: Expected 'news' in session state\nassert 'news' in {'weather': 'sunny'}",
          "Sub-agents run concurrently, each on its own branch of the invocation.", ("concurrency limit", "fan_out")),
    Topic("LlmAgent", "before_model_callback", "Optional[BeforeModelCallback]", "block_forbidden", "on_before_model", "GuardedAgent",
          "inspecting or blocking a request before it reaches the model", "10: An LlmAgent with a before_model_callback guardrail.",
          'def block_forbidden(callback_context, llm_request):\n  text = str(llm_request.contents[-1])\n'
          '  if "forbidden" in text:\n    return LlmResponse(content=types.Content(role="model", parts=[types.Part(text="I cannot help with that.")]))\n  return None',
          "lambda callback_context, llm_request: None",
          "AssertionError: Expected the request containing 'forbidden' to be blocked\nassert 'I cannot help with that.' in 'Sure! Here is the forbidden recipe...'",
          "A returned LlmResponse is used instead of calling the model.", ("guardrail hook", "pre_request_filter"),
          'instruction="Answer the user."'),
)
DISTRACTORS = ("It is ignored unless the agent runs inside a Runner with a plugin.", "It raises an ImportError when the module is loaded.",
               "It only takes effect in live (bidirectional streaming) mode.", "It is copied to every sub-agent and overrides theirs.")


@dataclass(frozen=True)
class Case:
    """One benchmark case; for _mc suites also its options, right letter and the 'fake API' letter."""
    suite: str
    number: int
    topic: Topic
    question: str
    options: tuple[str, ...] = ()
    correct: str = ""
    decoy: str = ""

    @property
    def id(self) -> str:
        return f"{self.suite}:{self.number:02d}"

    @property
    def kind(self) -> Literal["code", "api", "mc"]:
        return "code" if self.suite == "fix_errors" else "api" if self.suite == "api_understanding" else "mc"

    @property
    def name(self) -> str:
        """The benchmark_name: _mc titles are cut to 50 characters, as the harness does."""
        return self.question[:50] + "..." if self.kind == "mc" and len(self.question) > 50 else self.question


def build_cases() -> list[Case]:
    """Five suites x seven topics; option order is fixed per case so every run asks the same thing."""
    cases: list[Case] = []
    for n, t in enumerate(TOPICS, 1):
        others = [f for f, *_r in CLASSES[t.cls][2] + CLASSES["BaseAgent"][2] if f not in (t.field, "name")][:3]
        mc = {
            "configure_adk_features_mc": (f"Which `{t.cls}` parameter (type `{t.ftype}`) is used for {t.purpose}?",
                                          [f"`{t.field}`", f"`{t.fake}`", *(f"`{o}`" for o in others)]),
            "diagnose_setup_errors_mc": (f"You pass `{t.fake}=...` to `{t.cls}(...)` while building the agent. What happens?",
                                         ["Construction fails with a pydantic ValidationError: extra inputs are not permitted.",
                                          f"`{t.fake}` is accepted as an alias of `{t.field}`.", *DISTRACTORS[:3]]),
            "predict_runtime_behavior_mc": (f"Predict how `{t.field}` on `{t.cls}` behaves when set in the snippet below.",
                                            [t.behaviour, f"It is ignored unless `{t.fake}` is also set.", *DISTRACTORS[1:]]),
        }
        cases.append(Case("fix_errors", n, t, t.fix_name))
        cases.append(Case("api_understanding", n, t, f"Which parameter on `{t.cls}` is used for {t.purpose}?"))
        for suite, (question, options) in mc.items():
            order = list(range(5))
            random.Random(f"{suite}:{n}").shuffle(order)
            letters = "ABCDE"
            cases.append(Case(suite, n, t, question, tuple(options[i] for i in order),
                              letters[order.index(0)], letters[order.index(1)]))
    names = [c.name for c in cases]
    assert len(set(names)) == len(names), "benchmark names must be unique: ground truth is keyed by them"
    return cases


# --- steps: what an agent did, independent of how a generator logs it ------------------

@dataclass(frozen=True)
class Step:
    kind: Literal["think", "call", "say", "error"]
    text: str = ""
    tool: str = ""
    args: dict[str, Any] | None = None
    writer: bool = False  # thoughts of the writing sub-agent rather than the researcher


def think(text: str, writer: bool = False) -> Step:
    return Step("think", text, writer=writer)


def call(tool: str, **args: Any) -> Step:
    return Step("call", run_tool(tool, args), tool, args)


def error(text: str) -> Step:
    return Step("error", text)


@dataclass(frozen=True)
class Outcome:
    """One attempt: its steps, status, answer, error_message, and the verdict if it is judged.

    `decisive` is the index in `steps` of where the failure was decided: the agent's mistake
    (the fault, for Infrastructure), so an analyzer's root-cause step can be graded. None for a pass.
    `scenario` names the specific cause scripted (a category has several), so a grouping of
    failures into patterns can be graded too; it is never written to disk."""
    steps: tuple[Step, ...]
    status: str
    answer: dict[str, Any] | None = None
    error_message: str | None = None
    verdict: str | None = None
    decisive: int | None = None
    scenario: str = ""


def path_of(cls: str) -> str:
    return f"{AGENTS}/{CLASSES[cls][0]}.py"


def fence(answer: dict[str, Any]) -> str:
    return "```json\n" + json.dumps(answer, indent=2) + "\n```"


# --- answers and how the harness judges them -----------------------------------------

class FixErrorAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rationale: str
    benchmark_type: str
    code: str


class ApiUnderstandingAnswer(FixErrorAnswer):
    fully_qualified_class_name: str


class MultipleChoiceAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rationale: str
    benchmark_type: str
    answer: Literal["A", "B", "C", "D", "E"]


MODELS = {"code": FixErrorAnswer, "api": ApiUnderstandingAnswer, "mc": MultipleChoiceAnswer}


def code_for(t: Topic, *, field: str | None = None, value: str | None = None, head: str = "", tail: str = "",
             returns: bool = True) -> str:
    """create_agent() for a topic; the keyword arguments let a scenario plant its mistake."""
    imports = ["from google.adk.agents import BaseAgent, LlmAgent" + (f", {t.cls}" if t.cls != "LlmAgent" else "")]
    if t.field == "before_model_callback":
        imports += ["from google.adk.models import LlmResponse", "from google.genai import types"]
    body = [t.prelude] if t.prelude else []
    args = [f'name="demo_{t.field}_agent"'] + (["model=model_name"] if t.cls == "LlmAgent" else [])
    args += [t.kwargs] if t.kwargs else []
    args.append(f"{field or t.field}={value or t.value}")
    body.append(f"root_agent = {t.cls}(\n" + "".join(f"    {a},\n" for a in args) + ")")
    body += [tail] if tail else []
    body += ["return root_agent"] if returns else []
    return "\n".join([*([head] if head else []), *imports, "", "",
                      "def create_agent(model_name: str) -> BaseAgent:", f'  """{t.fix_name[4:]}"""',
                      textwrap.indent("\n".join(body), "  ")]) + "\n"


def answer_for(case: Case, rng: random.Random, *, rationale: str, code: str | None = None, field: str | None = None,
               fqcn: str | None = None, letter: str | None = None) -> dict[str, Any]:
    """The agent's final structured answer; defaults are the right answer."""
    t = case.topic
    if case.kind == "code":
        return {"rationale": rationale, "benchmark_type": "fix_error", "code": code if code is not None else code_for(t)}
    if case.kind == "api":
        return {"rationale": rationale, "benchmark_type": "api_understanding", "code": field if field is not None else t.field,
                "fully_qualified_class_name": fqcn or f"google.adk.agents.{CLASSES[t.cls][0]}.{t.cls}"}
    return {"rationale": rationale, "benchmark_type": "multiple_choice", "answer": letter or case.correct}


def wrong_letter(case: Case, rng: random.Random) -> str:
    return rng.choice([x for x in "ABCDE" if x not in (case.correct, case.decoy)])


def pydantic_error(model: type[BaseModel], data: Any) -> str:
    """The real pydantic v2 message, so the demo's schema errors read like the harness's."""
    try:
        model.model_validate_json(data) if isinstance(data, str) else model.model_validate(data)
    except ValidationError as exc:
        return str(exc)
    raise AssertionError("expected a validation error")


def ctor_error(t: Topic, kwarg: str) -> str:
    """What ADK's extra='forbid' models say about an unknown constructor keyword."""
    try:
        value = ast.literal_eval(t.value)
    except (ValueError, SyntaxError):
        value = t.value
    model = create_model(t.cls, __config__=ConfigDict(extra="forbid"), name=(str, ...))
    return pydantic_error(model, {"name": "agent", kwarg: value})


PYTEST_HEAD = ("--- Pytest stdout ---\n============================= test session starts ==============================\n"
               "platform linux -- Python 3.12.8, pytest-8.3.4, pluggy-1.5.0\nrootdir: {root}\n"
               "plugins: anyio-4.8.0, asyncio-0.25.2\nasyncio: mode=Mode.AUTO, default_loop_scope=function\ncollected {n} items\n\n")
WARNINGS = ("=============================== warnings summary ===============================\n"
            "test_temp.py::test_create_agent_passes\n  /usr/local/lib/python3.12/site-packages/google/adk/runners.py:1381: "
            "DeprecationWarning: deprecated\n    save_input_blobs_as_artifacts=run_config.save_input_blobs_as_artifacts,\n\n"
            "-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html\n")


def pytest_log(root: str, code: str, failure: tuple[str, str] | None = None, *, collection: bool = False) -> str:
    """A pytest log: pass, a test failure with traceback, or an error while importing the module.

    failure is (exception text, a fragment of the line in code where it was raised)."""
    if failure is None:
        return PYTEST_HEAD.format(root=root, n=2) + "test_temp.py ..                                                          [100%]\n\n" + \
            WARNINGS + "======================== 2 passed, 1 warning in 4.87s =========================\n\n--- Pytest stderr ---\n"
    exc, anchor = failure
    lines = code.splitlines()
    at = next((i for i, line in enumerate(lines, 1) if anchor in line), len(lines))
    first = exc.splitlines()[0]
    shown = "\n".join(("E   " if collection else "E       ") + x for x in exc.splitlines())
    if collection:
        return (PYTEST_HEAD.format(root=root, n=0) + "==================================== ERRORS ====================================\n"
                "________________________ ERROR collecting test_temp.py _________________________\n"
                f"ImportError while importing test module '{root}/test_temp.py'.\n"
                "Hint: make sure your test modules/packages have valid Python names.\nTraceback:\n"
                "/usr/local/lib/python3.12/importlib/__init__.py:90: in import_module\n"
                "    return _bootstrap._gcd_import(name[level:], package, level)\ntest_temp.py:7: in <module>\n"
                f"    from fixed import create_agent\nfixed.py:{at}: in <module>\n    {lines[at - 1].strip()}\n{shown}\n"
                "=========================== short test summary info ============================\nERROR test_temp.py\n"
                "!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!\n"
                "=============================== 1 error in 1.31s ===============================\n\n--- Pytest stderr ---\n")
    in_test = first.startswith("AssertionError") or "NoneType" in first
    where = ("    async def test_create_agent_passes():\n        root_agent = create_agent(MODEL_NAME)\n"
             ">       await check_behaviour(root_agent)\n\ntest_temp.py:31: \n"
             if in_test else
             f"    async def test_create_agent_passes():\n>       root_agent = create_agent(MODEL_NAME)\n\ntest_temp.py:24: \n"
             + "_ " * 40 + f"\n\n    def create_agent(model_name: str) -> BaseAgent:\n>   {lines[at - 1].strip()}\n")
    return (PYTEST_HEAD.format(root=root, n=2) + "test_temp.py F.                                                          [ 50%]\n\n"
            "=================================== FAILURES ===================================\n"
            "___________________________ test_create_agent_passes ___________________________\n\n"
            f"{where}{shown}\n\n{'test_temp.py:31' if in_test else f'fixed.py:{at}'}: {first.split(':')[0].split('.')[-1]}\n"
            + WARNINGS + "=========================== short test summary info ============================\n"
            f"FAILED test_temp.py::test_create_agent_passes - {first}\n"
            "==================== 1 failed, 1 passed, 1 warning in 5.62s ====================\n\n--- Pytest stderr ---\n")


def judged(case: Case, rng: random.Random, steps: list[Step], answer: dict[str, Any], problem: str | None = None,
           anchor: str = "root_agent =", collection: bool = False, decisive: int | None = None,
           scenario: str = "") -> Outcome:
    """A generated answer plus the harness's verdict on it (problem None means it passes); the
    answer is step len(steps), which `decisive` may name."""
    final = [*steps, Step("say", fence(answer), writer=True)]
    if case.kind == "code":
        root = f"/tmp/benchmark_{rng.getrandbits(40):010x}"
        verdict = pytest_log(root, answer["code"], (problem, anchor) if problem else None, collection=collection)
    elif case.kind == "api":
        verdict = "Validation successful." if problem is None else \
            f"--- Validation Failed for: {case.question} ---\n  - Ground Truth '{case.topic.field}' failed: {problem}"
    else:
        verdict = None if problem is None else f"Expected '{case.correct}', but got '{answer['answer']}'.\nQuestion: {case.question}"
    return Outcome(tuple(final), "success", answer, None, verdict, decisive, scenario)


# --- research: what an agent that uses its tools well does ------------------------------

def research(case: Case, rng: random.Random, *, imports: bool = False, thorough: bool = False) -> list[Step]:
    """Look things up properly; the output really shows the right field (and the package's
    exports if imports, and every field of the class and its base if thorough)."""
    t = case.topic
    steps = [think(f"I should confirm how `{t.cls}` handles `{t.field}` before answering.")]
    pick = rng.random()
    if imports or pick < 0.3:
        steps += [call("list_directory", path=AGENTS), call("read_file", file_path=f"{AGENTS}/__init__.py")]
    if pick < 0.55 or imports or thorough:
        steps.append(call("read_file", file_path=path_of(t.cls)))
    else:
        steps.append(call("search_file_content", pattern=rf"\b{t.field}\b", path=f"{ROOT}/src"))
    if thorough and t.cls != "LlmAgent":
        steps.append(call("read_file", file_path=path_of("BaseAgent")))
    return steps


def transient_429(steps: list[Step], rng: random.Random) -> list[Step]:
    """Sometimes a retried 429 in an otherwise healthy trace: noise a reader must not blame."""
    if rng.random() < 0.25 and len(steps) > 1:
        steps.insert(1, error("429 RESOURCE_EXHAUSTED. Retrying in 2.1s (attempt 1/5)"))
    return steps


# --- one scenario per outcome -----------------------------------------------------------

Scenario = Callable[[Case, random.Random, bool], Outcome]


def passing(case: Case, rng: random.Random, cli: bool) -> Outcome:
    steps = research(case, rng) if rng.random() < 0.8 else []
    steps.append(think(f"`{case.topic.field}` is what the task needs; writing the answer.", writer=True))
    return judged(case, rng, steps, answer_for(case, rng, rationale=f"`{case.topic.cls}.{case.topic.field}` is for {case.topic.purpose}."))


def guessed(case: Case, rng: random.Random, steps: list[Step], why: str) -> Outcome:
    """An answer written without the facts (shared by starvation and tool misuse)."""
    t = case.topic
    steps = [*steps, think(why, writer=True)]
    r = f"Best guess: {t.cls} probably takes `{t.fake}` for this."
    if case.kind == "code":
        v = rng.randrange(3)
        if v == 0:
            head = f"from google.adk.agents.{t.cls.lower()} import {t.cls}"
            code = code_for(t, head=head)
            return judged(case, rng, steps, answer_for(case, rng, rationale=r, code=code),
                          f"ModuleNotFoundError: No module named 'google.adk.agents.{t.cls.lower()}'", head, collection=True)
        if v == 1:
            code = code_for(t, field=t.fake)
            return judged(case, rng, steps, answer_for(case, rng, rationale=r, code=code),
                          "pydantic_core._pydantic_core.ValidationError: " + ctor_error(t, t.fake))
        code = code_for(t).replace(f"{t.cls}(\n", f'{t.cls}(\n    "agent", {t.value},\n', 1)
        return judged(case, rng, steps, answer_for(case, rng, rationale=r, code=code),
                      "TypeError: BaseModel.__init__() takes 1 positional argument but 3 were given")
    if case.kind == "api":
        if rng.random() < 0.5:
            return judged(case, rng, steps, answer_for(case, rng, rationale="Could not find it; leaving the field empty.", field=""),
                          "TypeError: expected string or bytes-like object, got 'NoneType'")
        return judged(case, rng, steps, answer_for(case, rng, rationale=r, field=t.fake),
                      f"Answer '{t.fake}' does not match the expected parameter.")
    return judged(case, rng, steps, answer_for(case, rng, rationale="No source found; choosing the most conventional option.",
                                               letter=wrong_letter(case, rng)), "wrong")


def starvation(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """Well-formed tool calls that find nothing (or no tools at all), then a guess."""
    t = case.topic
    v = rng.randrange(3)
    if v == 0:
        steps = [think(f"Let me search for how to do {t.purpose}.")] + \
                [call("search_file_content", pattern=q, path=f"{ROOT}/src") for q in t.vague]
    elif v == 1:
        steps = [think(f"I know the `{t.cls}` API well enough to answer without looking anything up.")]
    else:
        steps = [call("list_directory", path=f"{ROOT}/docs"), call("glob", pattern=f"**/{t.vague[1].replace(' ', '_')}*.md")]
    why = "Writing it from memory." if v == 1 else "Nothing useful came back, so I'll go with my best guess of the API."
    # Decided where it chose not to look (v1), else where it chose to guess after the empty results.
    return replace(guessed(case, rng, steps, why), decisive=0 if v == 1 else len(steps), scenario=(
        "searches for vague terms find nothing", "answers from memory without looking", "looks only in the docs")[v])


def misuse(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """Tools called wrongly (directory read as a file, broken regex, wrong argument names, guessed
    paths without listing, a tool that does not exist), so the facts never arrive."""
    t = case.topic
    v = rng.randrange(5)
    if v == 0:
        steps = [call("read_file", file_path=AGENTS), call("read_file", file_path=f"{AGENTS}/")]
    elif v == 1:
        steps = [call("search_file_content", pattern=p, path=f"{ROOT}/src") for p in (f"{t.cls}(", f"{t.field}=[", f"*{t.field}")]
    elif v == 2:
        steps = [call("read_file", path=path_of(t.cls)), call("read_file", filename=path_of(t.cls))]
    elif v == 3:
        guesses = [f"{AGENTS}/{t.cls.lower()}.py", f"{AGENTS}/{t.cls.lower()}s.py", f"{ROOT}/src/google/adk/{t.cls.lower()}/agent.py"]
        steps = [think("The file is probably at agents/<name>.py; no need to list the directory.")] + \
                [call("read_file", file_path=g) for g in guesses]
    else:
        steps = [call("grep_code", query=t.field), call("glob", pattern=t.field)]
    outcome = guessed(case, rng, steps, "The tools keep failing; I'll write the answer from what I expect the API to be.")
    return replace(outcome, decisive=0, scenario=(  # the first misused call, or (v3) the plan to skip listing
        "reads a directory as a file", "passes an unescaped regex", "names read_file's argument wrongly",
        "guesses file paths without listing", "calls a tool that does not exist")[v])


def hallucination(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """The trace shows the real API; the agent confidently uses one that does not exist."""
    t = case.topic
    v = rng.randrange(3)
    steps = transient_429(research(case, rng, imports=v == 1), rng)
    steps.append(think(f"`{t.cls}` takes `{t.fake}` for {t.purpose}, so I'll use that.", writer=True))
    said = len(steps) - 1  # the first use of the invented name; an invented class first shows in the answer
    r = f"`{t.fake}` configures {t.purpose} on `{t.cls}`."
    tag = "invents a class" if v == 1 and case.kind != "mc" else "invents a field"
    if case.kind == "code":
        if v == 0:
            return judged(case, rng, steps, answer_for(case, rng, rationale=r, code=code_for(t, field=t.fake)),
                          "pydantic_core._pydantic_core.ValidationError: " + ctor_error(t, t.fake), decisive=said, scenario=tag)
        if v == 1:
            head = f"from google.adk.agents import {t.fake_cls}"
            return judged(case, rng, steps, answer_for(case, rng, rationale=f"`{t.fake_cls}` is the right base.", code=code_for(t, head=head)),
                          f"ImportError: cannot import name '{t.fake_cls}' from 'google.adk.agents' "
                          "(/usr/local/lib/python3.12/site-packages/google/adk/agents/__init__.py)", head, collection=True,
                          decisive=said + 1, scenario=tag)
        tail = f'print("configured", root_agent.{t.fake})'
        return judged(case, rng, steps, answer_for(case, rng, rationale=r, code=code_for(t, tail=tail)),
                      f"AttributeError: '{t.cls}' object has no attribute '{t.fake}'", tail, decisive=said, scenario=tag)
    if case.kind == "api":
        if v == 1:
            return judged(case, rng, steps, answer_for(case, rng, rationale=r, fqcn=f"google.adk.agents.{t.fake_cls}"),
                          f"fully_qualified_class_name 'google.adk.agents.{t.fake_cls}' does not exist.", decisive=said + 1, scenario=tag)
        return judged(case, rng, steps, answer_for(case, rng, rationale=r, field=t.fake),
                      f"Answer '{t.fake}' does not match the expected parameter.", decisive=said, scenario=tag)
    return judged(case, rng, steps, answer_for(case, rng, rationale=r, letter=case.decoy), "wrong", decisive=said, scenario=tag)


def schema(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """Facts right, final output unparseable or off-schema."""
    steps = research(case, rng)
    good = answer_for(case, rng, rationale=f"`{case.topic.field}` is for {case.topic.purpose}.")
    model = MODELS[case.kind]
    v = rng.randrange(5 if case.kind == "code" else 4)
    if v == 0:
        bad = {k: x for k, x in good.items() if k != list(good)[-1]}
        text, err = fence(bad), pydantic_error(model, bad)
    elif v == 1:
        bad = {**good, "confidence": 0.9}
        text, err = fence(bad), pydantic_error(model, bad)
    elif v == 2:
        text = "```json\n" + json.dumps(good, indent=2).replace('"rationale"', "'rationale'") + "\n```"
        err = pydantic_error(model, text.removeprefix("```json\n").removesuffix("\n```"))
    elif v == 3:
        text = f"The answer is `{case.topic.field}`: it handles {case.topic.purpose}."
        err = "ValueError: No JSON object found in model response."
    else:  # code put into the rationale, answered with an empty code field: parses, then fails the harness check
        bad = {**good, "rationale": good["code"], "code": ""}
        return replace(judged(case, rng, steps, bad, decisive=len(steps)), scenario="puts the code in the rationale",
                       verdict="Signature Verification Failed:\nGenerated code does not define 'create_agent' function.")
    return Outcome((*steps, Step("say", text, writer=True)), "failed", None,
                   f"Failed to parse {model.__name__} from model output: {err}", decisive=len(steps),
                   scenario=("omits a required field", "adds a field", "writes invalid JSON", "answers in prose")[v])


def logic(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """Facts right, output valid, behaviour wrong."""
    t = case.topic
    steps = transient_429(research(case, rng, thorough=True), rng)
    if case.kind == "code":
        if rng.random() < 0.3:
            steps.append(think("Building the agent; the caller will pick it up.", writer=True))
            return judged(case, rng, steps, answer_for(case, rng, rationale="Builds the agent.", code=code_for(t, returns=False)),
                          "AttributeError: 'NoneType' object has no attribute 'name'", decisive=len(steps) - 1,
                          scenario="does not return the agent")
        steps.append(think(f"Setting `{t.field}={t.bug}` should satisfy the task.", writer=True))
        return judged(case, rng, steps, answer_for(case, rng, rationale=f"Uses `{t.field}`.", code=code_for(t, value=t.bug)),
                      t.assertion, decisive=len(steps) - 1, scenario="sets a wrong value")
    if case.kind == "api":
        others = [f for f, *_r in CLASSES[t.cls][2] if f not in (t.field, "model")]
        if others:  # a real, visible neighbour of the right field
            other = rng.choice(others)
            steps.append(think(f"`{other}` looks closest to {t.purpose}.", writer=True))
            return judged(case, rng, steps, answer_for(case, rng, rationale=f"`{other}` handles it.", field=other),
                          f"Answer '{other}' does not match the expected parameter.", decisive=len(steps) - 1,
                          scenario="picks a neighbouring field")
        base = "google.adk.agents.base_agent.BaseAgent"  # right field, credited to the base class it reads about
        steps.append(think(f"`{t.cls}` subclasses `BaseAgent`, so the parameter belongs to `BaseAgent`.", writer=True))
        return judged(case, rng, steps, answer_for(case, rng, rationale=f"`{t.field}` is inherited.", fqcn=base),
                      f"fully_qualified_class_name '{base}' does not match.", decisive=len(steps) - 1,
                      scenario="credits the field to the base class")
    letter = wrong_letter(case, rng)
    steps.append(think(f"The source uses `{t.field}`; reasoning about when it applies, option {letter} fits best.", writer=True))
    return judged(case, rng, steps, answer_for(case, rng, rationale=f"Given `{t.field}`, option {letter} follows.", letter=letter),
                  "wrong", decisive=len(steps) - 1, scenario="misjudges the options")


# Faults that also end generation_failure events (rca.demo), named once for both.
QUOTA_SCENARIO, CONTAINER_SCENARIO = "model quota exhausted (429)", "the sandbox's container runtime fails"
QUOTA = ("429 RESOURCE_EXHAUSTED. {'error': {'code': 429, 'message': 'Resource has been exhausted (e.g. check quota).', "
         "'status': 'RESOURCE_EXHAUSTED'}}")


def infra(case: Case, rng: random.Random, cli: bool) -> Outcome:
    """The environment failed the agent: quota, deadline, container, overload."""
    steps = research(case, rng)[: rng.randrange(3)]
    fault = len(steps)  # the first of the errors that end the attempt
    v = rng.randrange(5)
    if v == 0:
        steps += [error(f"{QUOTA} Retrying in {2 ** i}s (attempt {i}/3)") for i in (1, 2, 3)]
        return Outcome(tuple(steps), "failed", error_message=QUOTA, decisive=fault, scenario=QUOTA_SCENARIO)
    if v == 1:
        msg = "google.api_core.exceptions.DeadlineExceeded: 504 Deadline Exceeded"
        return Outcome((*steps, error(msg)), "timeout", error_message=f"{msg} (agent run exceeded 300s)", decisive=fault,
                       scenario="the model call misses its deadline")
    if v == 2 and cli:
        msg = (f'Gemini CLI failed with code 125: Error: Post "http://d/v5.7.0/libpod/containers/gemini-cli-runner-'
               f'{rng.getrandbits(32):08x}/exec": http: ContentLength={rng.randrange(1800, 2400)} with Body length 0')
        return Outcome((*steps, error(msg)), "failed", error_message=msg, decisive=fault, scenario=CONTAINER_SCENARIO)
    if v == 2:
        msg = "google.genai.errors.ServerError: 503 UNAVAILABLE. {'error': {'code': 503, 'message': 'The model is overloaded. Please try again later.', 'status': 'UNAVAILABLE'}}"
        return Outcome((*steps, error(msg)), "failed", error_message=msg, decisive=fault,
                       scenario="the model is overloaded (503)")
    # The quota error kills the response; the harness then trips over the missing text.
    steps += [error(QUOTA), error(QUOTA + " Max retries reached; returning empty response.")]
    msg = "TypeError: 'NoneType' object is not iterable" if v == 3 else "Empty response from model: candidates=None"
    return Outcome(tuple(steps), "failed", error_message=msg, decisive=fault, scenario=QUOTA_SCENARIO)


SCENARIOS: dict[str | None, Scenario] = {None: passing, STARVATION: starvation, HALLUCINATION: hallucination,
                                         MISUSE: misuse, SCHEMA: schema, LOGIC: logic, INFRA: infra}


def prompt_for(case: Case) -> str:
    """The task text the agent is given."""
    t = case.topic
    if case.kind == "code":
        broken = code_for(t).replace(f"{t.field}={t.value}", f"# TODO: configure {t.purpose}")
        return (f"Fix the code so that the tests pass.\nTask: {case.question}\n\n```python\n{broken}```\n\n"
                "Respond with a JSON object with fields: rationale, benchmark_type, code.")
    if case.kind == "api":
        return f"{case.question}\nRespond with a JSON object with fields: rationale, benchmark_type, code, fully_qualified_class_name."
    options = "\n".join(f"{letter}. {text}" for letter, text in zip("ABCDE", case.options))
    return f"{case.question}\n\n{options}\n\nRespond with a JSON object with fields: rationale, benchmark_type, answer."
