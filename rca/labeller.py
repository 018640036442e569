"""Label failures in a notebook: one failure at a time, a button per category, each click a label.

Labels are what the answers are graded against (rca.agreement), so labelling must be quick: the
widget shows the task, the model's answer and the blamed step among its neighbours (the text
`rca show` prints), takes the root-cause step and agent from two fields, and writes the label
the moment a category button is clicked, then moves on to the next failure.

    from rca.labeller import Labeller
    Labeller("analysis_cache.db", labeller="ann")      # the last expression of a cell shows it
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets
import pandas as pd

from rca.errors import ParameterError, TraceNotFound
from rca.labels import label, load_labels
from rca.schema import Taxonomy, resolve_taxonomy
from rca.show import failure_text
from rca.store import load_failures
from rca.traces import load_transcript
from rca.transcript import Transcript


class Labeller:
    """The widget (`.widget`), with its parts as attributes so code and tests can drive it:
    `.buttons[category]`, `.step`, `.agent`, `.note`, `.previous`, `.next`, `.status`, `.text`."""

    def __init__(self, db: str | Path, *, failure_ids: Sequence[int] | None = None, labeller: str = "human",
                 taxonomy: Taxonomy | str | Path | None = "default", runs_dir: str | Path | None = None) -> None:
        self.db, self.labeller, self.runs_dir = Path(db), labeller, runs_dir
        self.taxonomy = resolve_taxonomy(taxonomy)
        frame = load_failures(db)
        self.rows = (frame if failure_ids is None else frame[frame["id"].isin(failure_ids)]).reset_index(drop=True)
        if self.rows.empty:
            raise ParameterError(f"no failures to label in {db}" + (f" among ids {list(failure_ids)}" if failure_ids else ""))
        self.position = 0
        self.text = widgets.HTML()
        self.step = widgets.Text(description="step", placeholder="index [n] of the root-cause step")
        self.agent = widgets.Combobox(description="agent", placeholder="the agent that took it", ensure_option=False)
        self.note = widgets.Text(description="note", placeholder="why (optional)",
                                 layout=widgets.Layout(width="60%"))
        self.buttons = {c.name: widgets.Button(description=c.name, tooltip=c.definition)
                        for c in self.taxonomy.categories}
        for name, button in self.buttons.items():
            button.on_click(lambda _, name=name: self.save(name))
        self.previous = widgets.Button(description="← previous")
        self.next = widgets.Button(description="next →", tooltip="skip this failure")
        self.previous.on_click(lambda _: self.go(self.position - 1))
        self.next.on_click(lambda _: self.go(self.position + 1))
        self.status = widgets.HTML()
        self.widget = widgets.VBox([
            self.text, widgets.HBox([self.step, self.agent]), self.note,
            widgets.HBox(list(self.buttons.values()), layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.previous, self.next]), self.status])
        self.go(0)

    @property
    def failure_id(self) -> int:
        return int(self.rows.loc[self.position, "id"])

    def go(self, position: int) -> None:
        """Show the failure at `position` (kept within the list), with this labeller's label if any."""
        self.position = min(max(position, 0), len(self.rows) - 1)
        row = self.rows.loc[self.position].to_dict()
        transcript = self._transcript(row)
        self.text.value = (f"<b>failure {self.position + 1} of {len(self.rows)}</b>"
                           f"<pre style='white-space: pre-wrap'>{html.escape(failure_text(row, transcript))}</pre>")
        self.agent.options = tuple(transcript.agents) if transcript is not None else ()
        mine = load_labels(self.db)
        mine = mine[(mine["failure_id"] == self.failure_id) & (mine["labeller"] == self.labeller)]
        given = mine.iloc[0] if len(mine) else None
        self.step.value = str(given["step"]) if given is not None and pd.notna(given["step"]) else ""
        self.agent.value = str(given["agent"]) if given is not None and pd.notna(given["agent"]) else ""
        self.note.value = str(given["note"]) if given is not None and pd.notna(given["note"]) else ""
        self.status.value = (f"your label: {html.escape(str(given['category']))}" if given is not None
                             else f"not labelled by {html.escape(self.labeller)} yet")

    def save(self, category: str) -> None:
        """Write this labeller's label of the shown failure, then show the next one; a bad field is said, not written."""
        text = self.step.value.strip()
        if text and not text.isdigit():
            self.status.value = f"<span style='color: #c00'>step must be a step index (0, 1, 2, ...), not {html.escape(text)!r}</span>"
            return
        try:
            label(self.db, self.failure_id, category=category, step=int(text) if text else None,
                  agent=self.agent.value.strip() or None, labeller=self.labeller, note=self.note.value.strip() or None,
                  taxonomy=self.taxonomy)
        except ParameterError as exc:
            self.status.value = f"<span style='color: #c00'>{html.escape(str(exc))}</span>"
            return
        saved = self.failure_id
        self.go(self.position + 1)
        self.status.value = f"saved failure {saved}: {html.escape(category)}. " + self.status.value

    def _transcript(self, row: dict) -> Transcript | None:
        try:
            return load_transcript(row, runs_dir=self.runs_dir)
        except (TraceNotFound, OSError):
            return None

    def _repr_mimebundle_(self, **kwargs: object) -> dict | None:
        return self.widget._repr_mimebundle_(**kwargs)
