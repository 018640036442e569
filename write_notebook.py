"""Write notebooks/root_cause_analysis.ipynb from rca.notebook.

The notebook is generated, not hand-edited: change a cell in rca/notebook.py, run
`python write_notebook.py`, and commit both files (a test fails when they drift apart).

    python write_notebook.py                      # notebooks/root_cause_analysis.ipynb
    python write_notebook.py --output /tmp/x.ipynb
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rca.notebook import notebook_text

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "notebooks" / "root_cause_analysis.ipynb"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the root-cause report notebook from code.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"where to write it (default: {DEFAULT_OUTPUT})")
    args = parser.parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(notebook_text(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
