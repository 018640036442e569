"""Every error rca raises, in one tree.

    RcaError
    ├── InputError (also ValueError)        bad input: a file, a record, a parameter. CLI exit 2
    │   ├── ParameterError                  a notebook or command parameter that cannot be used
    │   ├── FormatError                     a file or record no adapter can read (names where)
    │   └── TraceNotFound (also LookupError) a failure whose trace is not on disk any more
    └── AnalysisError                       the work itself failed. CLI exit 1
        ├── UnknownModel (also ValueError)  the API does not know the model; nothing was sent
        ├── AllKeysDead                     no API key is left for the batch
        └── ReportCellError                 a cell of the report notebook raised

Catch `rca.InputError` to tell a user's mistake from a failure of the analysis.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rca.notebook import ReportFiles


class RcaError(Exception):
    """Base of every error rca raises on purpose."""


class InputError(RcaError, ValueError):
    """The user's input cannot be used: a file, a record or a parameter. The CLI exits 2."""


class ParameterError(InputError):
    """A parameter (notebook, command line, Python call) that cannot be used as given."""


class FormatError(InputError):
    """A file or one record in it that cannot be read; `path` and `line` (or record) say where."""

    def __init__(self, path: str | Path, message: str, *, line: int | None = None, record: str | None = None) -> None:
        self.path, self.line, self.record, self.reason = str(path), line, record, message
        where = f"{path}:{line}" if line else f"{path} ({record})" if record else str(path)
        super().__init__(f"{where}: {message}")


class TraceNotFound(InputError, LookupError):
    """The failure's trace cannot be found on disk (the run folder moved or was deleted)."""


class AnalysisError(RcaError):
    """Analysis could not go on: the model, the keys or the report failed. The CLI exits 1."""


class UnknownModel(AnalysisError, ValueError):
    """The API does not know the model: the whole call fails before any row is sent."""


class AllKeysDead(AnalysisError):
    """Every API key is dead, retired for the day, or out of retries: the batch stops."""


class ReportCellError(AnalysisError):
    """A notebook cell failed; the partly executed notebook (and its HTML) were still written."""

    def __init__(self, cell_index: int, exec_count: int | None, source: str, ename: str, evalue: str,
                 files: ReportFiles) -> None:
        self.cell_index, self.exec_count, self.ename, self.evalue, self.files = cell_index, exec_count, ename, evalue, files
        self.first_line = next((line for line in source.splitlines() if line.strip()), "")
        super().__init__(f"cell {cell_index} (In [{exec_count}]: {self.first_line!r}) failed: {ename}: {evalue}")

    @property
    def bad_input(self) -> bool:
        """The cell raised one of rca's InputErrors (only its class name crosses the kernel boundary)."""
        return self.ename in _names(InputError)


def _names(cls: type) -> set[str]:
    """The names of cls and all its subclasses."""
    return {cls.__name__}.union(*(_names(sub) for sub in cls.__subclasses__()))
