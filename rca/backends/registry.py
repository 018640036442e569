"""Backends by name: the CLI's --backend choices, the notebook's `backend` and analyze_failures(backend=).

Each name maps to a factory, `module:attribute`, imported only when that backend is chosen,
so `import rca` and the offline analyzer never load an SDK. Adding a backend is one line
here plus its module; the factory takes the requested model (None: the backend's default)
and raises InputError when the backend cannot be used as asked (e.g. no API key).
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

from rca.backends import Backend
from rca.errors import ParameterError
from rca.keys import KeyPool

AUTO = "auto"  # Gemini when an API key is set, else the offline heuristic
FACTORIES: dict[str, str] = {
    "gemini": "rca.backends.gemini:from_env",
    "heuristic": "rca.backends.heuristic:from_env",
}


def backend_names() -> tuple[str, ...]:
    """Every name a caller may ask for, "auto" first."""
    return (AUTO, *FACTORIES)


def create_backend(name: str, model: str | None = None, **settings: Any) -> Backend:
    """The backend registered as `name`, built by its factory with the call's settings
    (`timeout_s`, `price`; a backend without a use for one ignores it)."""
    if name not in FACTORIES:
        raise ParameterError(f"unknown backend {name!r}: use one of {', '.join(map(repr, backend_names()))}")
    module, attribute = FACTORIES[name].split(":")
    backend: Backend = getattr(import_module(module), attribute)(model, **settings)
    return backend


def planned_model(name: str, model: str | None) -> str:
    """The model a call would use, without building the backend: an estimate needs no key."""
    if name not in (AUTO, *FACTORIES):
        raise ParameterError(f"unknown backend {name!r}: use one of {', '.join(map(repr, backend_names()))}")
    if name == AUTO:
        name = "gemini" if KeyPool.from_env() is not None else "heuristic"
    if name == "heuristic":
        return "heuristic"
    from rca.backends.gemini import DEFAULT_MODEL

    return model or os.environ.get("RCA_MODEL") or DEFAULT_MODEL


def choose_backend(name: str, model: str | None, *, announce: bool = True, **settings: Any) -> Backend:
    """The backend a call asked for; "auto" is Gemini when a key is set, else the heuristic, said once on stderr."""
    if name != AUTO:
        return create_backend(name, model, **settings)
    keys = KeyPool.from_env()
    if keys is None:
        if announce:
            print("rca: no Gemini API key set (GEMINI_API_KEY); using the offline heuristic analyzer", file=sys.stderr)
        return create_backend("heuristic", model, **settings)
    engine = create_backend("gemini", model, **settings)
    if announce:
        print(f"rca: analyzing with Gemini {engine.model} ({len(keys)} key{'s' * (len(keys) > 1)})", file=sys.stderr)
    return engine
