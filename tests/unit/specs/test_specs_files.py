"""The shared contract: examples validate; invalid files fail at their `# expect:` path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.specs import load_kombination, validate_text

DATA = Path(__file__).resolve().parents[2] / "data" / "spec"
EXAMPLES = sorted((DATA / "examples").glob("*.yaml"))
INVALID = sorted((DATA / "invalid").glob("*.yaml"))

# The line where the expected path is written (or, if it is missing, its nearest parent).
EXPECTED_LINES = {
    "bad-memory.yaml": 8,
    "bad-node-name.yaml": 8,
    "base-two-nodes.yaml": 7,
    "duplicate-node.yaml": 9,
    "ha-even-managers.yaml": 7,
    "hybrid-headscale.yaml": 11,
    "hybrid-mesh-public-subnet.yaml": 11,
    "hybrid-mesh-vpn-service.yaml": 13,
    "hybrid-no-vpn.yaml": 11,
    "local-without-address.yaml": 8,
    "missing-nodes.yaml": 5,
    "port-clash.yaml": 11,
    "typo-field.yaml": 7,
    "unknown-placement.yaml": 10,
    "unknown-stackkit.yaml": 6,
}


def test_data_is_complete() -> None:
    assert len(EXAMPLES) == 5
    assert sorted(p.name for p in INVALID) == sorted(EXPECTED_LINES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    assert validate_text(path.read_text()) == []
    assert load_kombination(path.read_text()).metadata.name


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_file_names_expected_path_and_line(path: Path) -> None:
    text = path.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# expect: ")
    expected = first.removeprefix("# expect: ").strip()
    problems = validate_text(text)
    assert problems, "an invalid file must be rejected"
    at_path = [p for p in problems if p.path == expected]
    assert at_path, [p.format(path.name) for p in problems]
    assert at_path[0].line == EXPECTED_LINES[path.name]


def test_duplicate_node_message_matches_the_contract() -> None:
    text = (DATA / "invalid" / "duplicate-node.yaml").read_text()
    [problem] = validate_text(text)
    assert problem.format("kombination.yaml") == (
        'kombination.yaml:9: spec.nodes[1].name: duplicate node name "nas" (first at line 8)'
    )


def test_typo_gets_a_suggestion_and_no_redundant_missing_field() -> None:
    [problem] = validate_text((DATA / "invalid" / "typo-field.yaml").read_text())
    assert problem.message == 'unknown field "nodez" (did you mean "nodes"?)'
