"""The labeller widget, driven in a real Jupyter kernel: a click on a category button writes the label."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import nbformat
from nbclient import NotebookClient

import rca

LOGS = Path(__file__).parent / "data" / "multiagent"

CELLS = [
    """from rca.labeller import Labeller
w = Labeller({db!r}, labeller="ann")
print(w.failure_id, "awning" in w.text.value, "&gt;&gt; [0]" in w.text.value, w.agent.options)""",
    """w.step.value, w.agent.value, w.note.value = "0", "Excel_Expert", "counts the wrong column"
w.buttons["Logic Error"].click()
print(w.failure_id, w.status.value)""",
    """w.step.value = "one"
w.buttons["Tool Misuse"].click()
print(w.failure_id, w.status.value)""",
    """w.previous.click()
print(w.failure_id, w.step.value, w.agent.value, w.status.value)""",
]


def test_a_click_in_the_kernel_writes_the_label_and_moves_on(tmp_path: Path) -> None:
    shutil.copytree(LOGS, tmp_path / "logs")
    db = tmp_path / "cache.db"
    rca.ingest_runs(tmp_path / "logs", db)
    rca.analyze_failures(rca.load_failures(db), backend="heuristic", progress=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(db=str(db))) for c in CELLS])
    NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = ["".join(o.get("text", "") for o in cell.outputs).strip() for cell in nb.cells]
    assert out[0] == "1 True True ('Excel_Expert', 'Computer_terminal', 'BusinessLogic_Expert', 'DataVerification_Expert')"
    assert out[1].startswith("2 saved failure 1: Logic Error.")
    assert out[2].startswith("2 ") and "step must be a step index" in out[2]
    assert out[3] == "1 0 Excel_Expert your label: Logic Error"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT failure_id, category, step, agent, note FROM labels WHERE labeller = 'ann'").fetchall()
    assert rows == [(1, "Logic Error", 0, "Excel_Expert", "counts the wrong column")]  # the bad step wrote nothing
