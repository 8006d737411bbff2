"""The one value every validation step reports: a problem at a field path and a line."""

from __future__ import annotations

from dataclasses import dataclass

from kombify.errors import SpecError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a kombination file.

    Attributes:
        path: Field path such as ``spec.nodes[1].name``; ``""`` for the document itself
            (YAML syntax errors, an empty file).
        line: 1-based line where the path (or its nearest existing parent) is written.
        message: What is wrong and, where possible, what was expected.
        column: 1-based column, only known for YAML syntax errors.
    """

    path: str
    line: int | None
    message: str
    column: int | None = None

    def format(self, filename: str) -> str:
        """Render as ``FILE:LINE: path: message`` (compiler style, one line).

        Args:
            filename: The name to show for the file.

        Returns:
            The formatted line, e.g. ``kombination.yaml:14: spec.nodes[1].name: duplicate
            node name "nas" (first at line 9)``.
        """
        where = filename
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        """The JSON shape printed by ``--json``: ``{"path", "line", "message"}``."""
        return {"path": self.path, "line": self.line, "message": self.message}


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """Sort by line (unknown lines last), then path, dropping exact duplicates."""
    unique = dict.fromkeys(problems)
    return sorted(unique, key=lambda p: (p.line is None, p.line or 0, p.path, p.message))


class KombinationError(SpecError):
    """A kombination file is invalid; ``problems`` lists every problem found, sorted by line."""

    def __init__(self, problems: list[Problem], *, filename: str = "kombination.yaml") -> None:
        self.problems = problems
        self.filename = filename
        first = problems[0].format(filename) if problems else f"{filename}: invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)
