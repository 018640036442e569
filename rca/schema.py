"""The answer a model must give, and the taxonomy of root causes it chooses from.

The answer schema is built from the taxonomy, so a user's own categories flow into the
JSON schema sent to the model, into validation, and into the charts, with no other change.
"""

from __future__ import annotations

import enum
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator


class Category(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1)
    definition: str = Field(min_length=1)


class Taxonomy(BaseModel):
    """A named set of root-cause categories, each with the one-line definition the model sees."""

    model_config = ConfigDict(frozen=True)
    name: str = Field(min_length=1)
    categories: tuple[Category, ...] = Field(min_length=2)

    @field_validator("categories")
    @classmethod
    def _unique(cls, categories: tuple[Category, ...]) -> tuple[Category, ...]:
        names = [c.name for c in categories]
        if len(set(names)) != len(names):
            raise ValueError(f"category names must be unique, got {names}")
        return categories

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    @property
    def key(self) -> str:
        """Name plus a short hash of the categories: a changed definition is a new cache key."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]
        return f"{self.name}@{digest}"

    @classmethod
    def from_file(cls, path: str | Path) -> Taxonomy:
        """A taxonomy from YAML or JSON: {name, categories: [{name, definition}, ...]}."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"taxonomy file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML/JSON: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise ValueError(f"{path}: not a taxonomy: {exc}") from None


DEFAULT_TAXONOMY = Taxonomy(
    name="default",
    categories=(
        Category(name="Context Starvation", definition="Tools gave nothing useful or were not used, and the agent guessed."),
        Category(name="Hallucination", definition="The agent invented or contradicted an API, import or attribute."),
        Category(name="Tool Misuse", definition="Wrong tool, wrong arguments, or discovery skipped."),
        Category(name="Schema Violation", definition="The final output is malformed or fails pydantic validation."),
        Category(name="Logic Error", definition="Valid output with wrong behaviour: tests or assertions fail."),
        Category(name="Infrastructure", definition="429, 5xx, timeouts or environment faults unrelated to the agent."),
    ),
)

TAXONOMIES = {DEFAULT_TAXONOMY.name: DEFAULT_TAXONOMY}


def resolve_taxonomy(value: Taxonomy | str | Path | dict[str, Any] | None) -> Taxonomy:
    """A Taxonomy from what a user passes: None, a built-in name, a file path, or a dict."""
    if value is None:
        return DEFAULT_TAXONOMY
    if isinstance(value, Taxonomy):
        return value
    if isinstance(value, dict):
        return Taxonomy.model_validate(value)
    if str(value) in TAXONOMIES:
        return TAXONOMIES[str(value)]
    if Path(value).suffix in (".yaml", ".yml", ".json"):
        return Taxonomy.from_file(value)
    raise ValueError(f"unknown taxonomy {str(value)!r}: use one of {sorted(TAXONOMIES)} or a .yaml/.json file")


class Evidence(BaseModel):
    step: int | None = Field(description="Index [n] of the trace step quoted, or null.")
    quote: str = Field(description="A short verbatim quote from that step.")


class _AnalysisBase(BaseModel):
    """Fields every answer has; the category field is added per taxonomy."""

    explanation: str = Field(description="Why this attempt failed, in two to four sentences.")
    expected_behavior: str = Field(description="What a correct agent would have done.")
    actual_behavior: str = Field(description="What this agent did instead.")
    root_cause_step: int | None = Field(
        description="Index [n] of the earliest agent decision whose correction alone would have avoided the "
                    "failure (not where the error surfaced); null only if the trace has no steps.")
    candidate_steps: list[int] = Field(
        max_length=3, description="Up to three step indices [n] that may be the root-cause step, most likely first.")
    root_cause_agent: str | None = Field(
        description="The agent that made that decision, as the trace names it; null when only one agent acts.")
    evidence: list[Evidence] = Field(description="Verbatim quotes from the trace that support the diagnosis.")
    fix: str = Field(description="One concrete change to the agent (its instructions, a tool, or its configuration) "
                                 "that would have avoided this failure.")
    confidence: float = Field(ge=0.0, le=1.0, description="How sure you are, from 0 to 1.")
    used_tools: bool = Field(description="Did the agent call any tools?")
    tools_called: list[str] = Field(description="Names of the tools it called, each once.")
    received_useful_output: bool = Field(description="Did the tools return output that could answer the task?")
    hallucinated_symbols: list[str] = Field(
        description="Names the agent used (APIs, imports, attributes, parameters, files) that do not exist "
                    "or that the tools' output contradicts."
    )
    schema_validation_failed: bool = Field(description="Did the final answer fail schema/pydantic validation?")


@lru_cache(maxsize=32)
def answer_model(taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> type[BaseModel]:
    """The pydantic answer model for a taxonomy, with its categories as an enum."""
    categories = enum.Enum("RootCauseCategory", {f"C{i}": name for i, name in enumerate(taxonomy.names)}, type=str)  # type: ignore[misc]
    model = create_model(
        "RootCauseAnalysis",
        __base__=_AnalysisBase,
        root_cause_category=(categories, Field(description="The one category from the taxonomy that caused the failure.")),
    )
    return model


RootCauseAnalysis = answer_model(DEFAULT_TAXONOMY)


def answer_json_schema(taxonomy: Taxonomy) -> dict[str, Any]:
    """The JSON schema sent as response_json_schema.

    The category comes last: Gemini emits properties in schema order, so the model
    writes its explanation and evidence before it commits to a label.
    """
    schema = answer_model(taxonomy).model_json_schema()
    order = [k for k in schema["properties"] if k != "root_cause_category"] + ["root_cause_category"]
    schema["properties"] = {k: schema["properties"][k] for k in order}
    return schema


def category_of(answer: BaseModel) -> str:
    value = answer.root_cause_category  # type: ignore[attr-defined]
    return value.value if isinstance(value, enum.Enum) else str(value)


def answer_to_json(answer: BaseModel) -> str:
    return json.dumps(answer.model_dump(mode="json"), ensure_ascii=False)
