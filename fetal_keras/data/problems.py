"""Problems found in a cohort: what is wrong, where (CSV line, subject, file) and how serious."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    """ERROR: the row cannot be used. WARNING: usable, but the user should know."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem with one row (or with the whole CSV when ``line`` is None)."""

    severity: Severity
    message: str
    csv: str
    line: int | None = None
    subject: str | None = None
    file: str | None = None

    def describe(self) -> str:
        """One line: ``cohort.csv line 4 (id 'sub-02'), file x.nii.gz: error: message``."""
        where = self.csv if self.line is None else f"{self.csv} line {self.line}"
        if self.subject:
            where += f" (iFIND_id {self.subject!r})"
        if self.file:
            where += f", file {self.file}"
        return f"{where}: {self.severity.value}: {self.message}"


def raise_for_errors(problems: list[Problem]) -> None:
    """Raise one ValueError listing every ERROR in ``problems``; warnings are ignored."""
    errors = [problem for problem in problems if problem.severity is Severity.ERROR]
    if errors:
        listing = "\n".join(f"  - {problem.describe()}" for problem in errors)
        raise ValueError(f"{len(errors)} problem(s) in the cohort:\n{listing}")
