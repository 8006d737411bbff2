"""Template validation: precise FILE:LINE: path: message errors, built-ins, user templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from kombify.errors import NotFoundError, SpecError
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
from kombify.specs.quantities import SHORT_UNITS, parse_quantity, parse_size

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
        "t.yaml:7: groups[0].nodes[0].cpus: must be more than 0, got 0",
        "t.yaml:8: groups[0].nodes[0].memory: expected a size: MiB as a number (at least 64), "
        'or like 512m, 1g, got "lots"',
        't.yaml:14: groups[1].nodes[0].colour: unknown field "colour"',
    ]


def test_bad_names_and_types() -> None:
    text = GOOD.replace("name: lab", "name: Lab_1").replace("type: vps", "type: cloud")
    problems = _problems(text)
    assert problems == [
        "t.yaml:1: name: expected a name: lower-case letters, digits and '-', at most 32 "
        'characters, got "Lab_1"',
        't.yaml:10: groups[1].type: must be one of local, vps; got "cloud"',
    ]


def test_duplicate_node_names_point_at_the_second() -> None:
    text = GOOD.replace("      - name: b", "      - name: a")
    assert _problems(text) == [
        "t.yaml:12: groups[1].nodes[0].name: node name `a` is already used at "
        "groups[0].nodes[0].name"
    ]


def test_yaml_syntax_error_has_a_line() -> None:
    assert _problems("name: x\ngroups: [\n") == [
        "t.yaml:3:1: YAML syntax error: did not find expected node content (while parsing a "
        "flow node)"
    ]


def test_missing_fields() -> None:
    assert sorted(_problems("description: nothing\n")) == [
        't.yaml:1: groups: missing required field "groups"',
        't.yaml:1: name: missing required field "name"',
    ]


def test_ssh_port_cannot_be_published_again() -> None:
    problems = _problems(GOOD.replace("[443]", "[22]"))
    assert problems == [
        "t.yaml:13: groups[1].nodes[0].ports[0]: expected a TCP port from 1 to 65535 but 22 "
        "(SSH, which every node publishes already), got 22"
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


def test_alias_bomb_is_refused_quickly_with_bounded_text() -> None:
    # 505 bytes that safe_load expands to 10**8 strings (the API answered 69 MB for it).
    bomb = "name: lab\nlol: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"l{i}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]\n"
    bomb += "groups: *i\n"
    with pytest.raises(TemplateError) as caught:
        load_text(bomb, file="t.yaml")
    assert str(caught.value) == "t.yaml:1: the document is too large or too deeply nested"


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    deep = "name: lab\ngroups: " + "[" * 10_000 + "]" * 10_000 + "\n"
    # libyaml stops at its own depth limit; the pure-Python parser at ours. One line either way.
    [problem] = _problems(deep)
    assert problem.startswith("t.yaml:") and "nest" in problem


def test_many_bad_values_give_bounded_text() -> None:
    node = "      - {name: n, memory: " + "z" * 3000 + "}\n"
    text = "name: lab\ngroups:\n  - name: lan\n    nodes:\n" + node * 300
    with pytest.raises(TemplateError) as caught:
        load_text(text, file="t.yaml")
    assert len(caught.value.problems) == 101  # 100 and a line saying more are not shown
    assert len(str(caught.value)) < 200 * 101
    assert str(caught.value.problems[-1]) == "t.yaml: more problems not shown (the first 100 are)"


def test_duplicate_keys_are_reported_like_in_a_kombination() -> None:
    assert _problems(GOOD.replace("description: two nodes", "description: a\nname: b")) == [
        't.yaml:3: name: duplicate key "name" (first at line 1)'
    ]


def test_binary_and_oversized_files_are_one_line_errors(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00\x01\n")
    with pytest.raises(SpecError, match=r"^`.*bin\.yaml` is not UTF-8 text \(byte 7\): "
                       "expected a template in YAML$"):
        template_file(binary)
    big = tmp_path / "big.yaml"
    big.write_text("# x\n" * 300_000)
    with pytest.raises(SpecError, match=r"`.*big\.yaml` is larger than 1 MiB, the limit for a "
                       "template file$"):
        template_file(big)


def test_one_size_parser_serves_templates_and_kombinations() -> None:
    assert parse_size("1.5g", units=SHORT_UNITS) == parse_quantity("1.5Gi") == 1536 * 1024**2
    assert parse_quantity("1.5g") is None and parse_size("1.5Gi", units=SHORT_UNITS) is None
    with pytest.raises(ValueError, match="bad memory size `lots`"):
        parse_memory("lots")
