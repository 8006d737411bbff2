"""Template validation: precise FILE:LINE: path: message errors, built-ins, user templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.errors import NotFoundError
from kombify.sim.models import NodeSpec, SimulationSpec
from kombify.sim.templates import (
    TemplateError,
    format_memory,
    get_template,
    list_templates,
    load_text,
    parse_memory,
    save_user_template,
    spec_to_yaml,
    template_file,
    user_dir,
)

GOOD = """name: lab
description: two nodes
groups:
  - name: lan
    nodes:
      - name: a
        cpus: 2
        memory: 1g
  - name: cloud
    type: vps
    nodes:
      - name: b
        ports: [443]
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(TemplateError) as caught:
        load_text(text, file="t.yaml")
    return [str(p) for p in caught.value.problems]


def test_valid_template_becomes_a_spec() -> None:
    spec = load_text(GOOD)
    assert spec == SimulationSpec(
        name="lab",
        description="two nodes",
        nodes=[
            NodeSpec(name="a", group="lan", cpus=2.0, memory_mb=1024),
            NodeSpec(name="b", group="cloud", type="vps", ports=[443]),
        ],
    )


def test_every_problem_has_file_line_and_path() -> None:
    text = GOOD.replace("memory: 1g", "memory: lots").replace("cpus: 2", "cpus: 0")
    text = text.replace("ports: [443]", "ports: [443]\n        colour: red")
    assert _problems(text) == [
        "t.yaml:7: groups[0].nodes[0].cpus: 0 is less than or equal to the minimum of 0",
        "t.yaml:8: groups[0].nodes[0].memory: 'lots' is not a size: expected MiB as a number,"
        " or like 512m, 1g",
        "t.yaml:14: groups[1].nodes[0]: Additional properties are not allowed ('colour' was "
        "unexpected) (allowed: cpus, memory, name, ports, role, type, user)",
    ]


def test_bad_names_and_types() -> None:
    text = GOOD.replace("name: lab", "name: Lab_1").replace("type: vps", "type: cloud")
    problems = _problems(text)
    assert problems[0].startswith("t.yaml:1: name: 'Lab_1' is invalid: expected lower-case")
    assert problems[1].startswith("t.yaml:10: groups[1].type: 'cloud' is not one of")


def test_duplicate_node_names_point_at_the_second() -> None:
    text = GOOD.replace("      - name: b", "      - name: a")
    assert _problems(text) == [
        "t.yaml:12: groups[1].nodes[0].name: node name `a` is already used at "
        "groups[0].nodes[0].name"
    ]


def test_yaml_syntax_error_has_a_line() -> None:
    assert _problems("name: x\ngroups: [\n")[0].startswith("t.yaml:3: : invalid YAML") or (
        _problems("name: x\ngroups: [\n")[0].startswith("t.yaml:3: (top): invalid YAML")
    )


def test_missing_fields() -> None:
    assert sorted(_problems("description: nothing\n")) == [
        "t.yaml:1: (top): 'groups' is a required property",
        "t.yaml:1: (top): 'name' is a required property",
    ]


def test_ssh_port_cannot_be_published_again() -> None:
    problems = _problems(GOOD.replace("[443]", "[22]"))
    assert problems == [
        "t.yaml:13: groups[1].nodes[0].ports[0]: port 22 is SSH, which every node publishes "
        "already"
    ]


def test_six_valid_builtins_that_round_trip() -> None:
    builtins = [t for t in list_templates() if t.source == "builtin"]
    assert {t.name for t in builtins} == {
        "single-node", "nas-pi", "swarm-3", "hybrid", "vpn-gateway", "edge-lab"
    }
    for template in builtins:
        assert load_text(spec_to_yaml(template.spec)) == template.spec
    assert any(n.type == "vps" for n in get_template("hybrid").spec.nodes)


def test_user_templates_are_listed_and_override(kombify_home: Path) -> None:
    saved = save_user_template(GOOD.replace("name: lab", "name: single-node"))
    assert saved.path.parent == user_dir() == kombify_home / "templates"
    found = get_template("single-node")
    assert found.source == "user" and found.description == "two nodes"
    with pytest.raises(TemplateError):
        save_user_template("name: x\n")
    assert not (user_dir() / "x.yaml").exists()


def test_template_by_path_and_unknown_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    assert template_file(path).spec.name == "lab"
    with pytest.raises(NotFoundError, match="`nope` does not exist"):
        get_template("nope")


@pytest.mark.parametrize(
    ("text", "mb"), [(512, 512), ("512m", 512), ("1g", 1024), ("1.5G", 1536), ("384M", 384)]
)
def test_memory_sizes(text: int | str, mb: int) -> None:
    assert parse_memory(text) == mb
    assert parse_memory(format_memory(mb)) == mb
