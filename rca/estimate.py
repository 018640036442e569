"""What a batch would cost, before anything is sent: analyze_failures(..., dry_run=True).

Each row's prompt is built exactly as the call would send it (the trace read, rendered,
measured and let go), so the token count is the real one; prices come from rca.pricing.
A row whose answer is already cached under these inputs costs nothing and is counted as
cached. No key is needed and any taxonomy can be estimated: nothing leaves the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from rca.errors import TraceNotFound
from rca.pricing import Price
from rca.prompt import PROMPT_VERSION
from rca.schema import Taxonomy
from rca.store import cached_analysis, connect


def estimate(df: pd.DataFrame, db: Path, model: str, tax: Taxonomy, *, runs_dir: str | Path | None = None,
             price: Price | None = None) -> pd.DataFrame:
    """`df` with est_input_tokens, est_cost_usd (None: price unknown), cached and model columns;
    attrs["dry_run_total"] sums them. Prints one line saying so."""
    from rca.analyze import prepare  # the same prompt the call would send

    tokens: list[int] = []
    costs: list[float | None] = []
    cached: list[bool] = []
    conn = connect(db)
    try:
        for row in df.to_dict("records"):
            try:
                prepared = prepare(row, model, tax, runs_dir, price)
            except (TraceNotFound, OSError):
                prepared = None
            if prepared is None:  # a missing trace is reported by the real run; it costs nothing here
                tokens.append(0)
                costs.append(0.0)
                cached.append(False)
                continue
            hit = cached_analysis(conn, prepared.request.failure_id, model=model, taxonomy=tax.key,
                                  prompt_version=PROMPT_VERSION, trace_hash=prepared.request.prompt_hash)
            cached.append(hit is not None)
            tokens.append(0 if hit is not None else prepared.est_tokens)
            costs.append(0.0 if hit is not None else prepared.est_cost)
    finally:
        conn.close()
    out = df.copy()
    out["est_input_tokens"], out["est_cost_usd"], out["cached"], out["model"] = tokens, costs, cached, model
    known = all(c is not None for c in costs)
    total = float(sum(c for c in costs if c is not None)) if known else None
    out.attrs["dry_run_total"] = {"rows": len(out), "cached": sum(cached), "input_tokens": int(sum(tokens)),
                                  "cost_usd": total}
    cost = (f"~${total:.4f} expected" if total is not None else
            "cost unknown: the price data (genai-prices) does not know this model; give a price (--price IN,OUT)")
    print(f"rca dry run: {len(out)} rows ({sum(cached)} cached, at no cost), ~{int(sum(tokens)):,} input tokens to "
          f"send, {cost} with {model}; no calls made", file=sys.stderr)
    return out
