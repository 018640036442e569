"""The labeller widget, driven in a real Jupyter kernel: a click on a category button writes the label."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat

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
RUN = """import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], 4)
NotebookClient(nb, kernel_name="python3", timeout=60).execute()
nbformat.write(nb, sys.argv[1])"""


def test_a_click_in_the_kernel_writes_the_label_and_moves_on(tmp_path: Path) -> None:
    shutil.copytree(LOGS, tmp_path / "logs")
    db = tmp_path / "cache.db"
    rca.ingest_runs(tmp_path / "logs", db)
    rca.analyze_failures(rca.load_failures(db), backend="heuristic", progress=False)
    path = tmp_path / "label.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.format(db=str(db))) for c in CELLS]), path)
    # nbclient from a child process: looking up the kernel imports ipykernel, which would make this
    # process look like a notebook to the tests that run after it
    subprocess.run([sys.executable, "-c", RUN, str(path)], check=True, timeout=120, capture_output=True)
    out = ["".join(o.get("text", "") for o in cell.outputs).strip() for cell in nbformat.read(path, 4).cells]
    assert out[0] == "1 True True ('Excel_Expert', 'Computer_terminal', 'BusinessLogic_Expert', 'DataVerification_Expert')"
    assert out[1].startswith("2 saved failure 1: Logic Error.")
    assert out[2].startswith("2 ") and "step must be a step index" in out[2]
    assert out[3] == "1 0 Excel_Expert your label: Logic Error"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT failure_id, category, step, agent, note FROM labels WHERE labeller = 'ann'").fetchall()
    assert rows == [(1, "Logic Error", 0, "Excel_Expert", "counts the wrong column")]  # the bad step wrote nothing
