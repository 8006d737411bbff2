"""Mutating valid files thousands of times: the validator never raises, hangs or loses paths."""

from __future__ import annotations

import signal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kombify.specs import Problem, validate_text

EXAMPLES = [
    p.read_text()
    for p in sorted((Path(__file__).resolve().parents[2] / "data/spec/examples").glob("*.yaml"))
]
TOKENS = [
    ":",
    "-",
    " ",
    "\n",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a",
    "*a",
    "!!binary",
    "<<: *a",
    "\t",
    "'",
    '"',
    "#",
    "0Gi",
    "nodes",
    "name",
    "99999",
    "null",
    "true",
    "@",
    "%",
    "|",
    ">",
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "line"]))
        token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)))
        if kind == "insert":
            text = text[:at] + token + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        elif kind == "replace":
            text = text[:at] + token + text[at + len(token) :]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
            text = "".join(lines)
    return text


def _alarm(signum: int, frame: object) -> None:
    raise TimeoutError("validation hung")


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutations_always_answer_with_paths(text: str) -> None:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)
    try:
        problems = validate_text(text)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    for problem in problems:
        assert isinstance(problem, Problem)
        assert (
            isinstance(problem.path, str) and isinstance(problem.message, str) and problem.message
        )
        assert problem.line is None or problem.line >= 1
        assert "\n" not in problem.format("k.yaml")
        # Only document-level problems (syntax, empty, not a mapping) have no field path.
        if not problem.path:
            assert problem.line is not None
    lines = [p.line or 0 for p in problems]
    assert lines == sorted(lines)
