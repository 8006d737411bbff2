"""Mermaid and SVG drawings: well-formed, every element drawn, hostile names kept inert."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kombify.errors import ServiceUnavailableError
from kombify.operate.graph import GraphEdge, GraphElement, StackGraph, build_graph, to_mermaid
from kombify.operate.graph.mermaid import escape
from kombify.operate.graph.svg import to_dot, to_svg
from kombify.specs import load_kombination

EXAMPLES = Path(__file__).parents[2] / "data" / "spec" / "examples"
KITS = ["base-homelab", "modern-homelab", "ha-homelab", "cloud-hybrid"]
HOSTILE = 'x"]; click n0 call alert(1) %% <script>`#9;\\n\n{{y}}|z|-->'

# One line per statement, each of a known shape (mermaid's flowchart grammar, the parts used).
_LABEL = r'"[^"\n]*"'
_BOX = re.compile(rf"^    (n\d+)(\[{_LABEL}\]|\({_LABEL}\)|\{{\{{{_LABEL}\}}\}}|>{_LABEL}\])$")
_LINE = re.compile(rf"^    (n\d+) (-->|-\.-|==>|<-\.->)(?:\|{_LABEL}\|)? (n\d+)$")
_CLASSDEF = re.compile(
    r"^    classDef st_[a-z0-9_]+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#212121$"
)
_CLASS = re.compile(r"^    class (n\d+(?:,n\d+)*) st_[a-z0-9_]+$")


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Boxes (id -> label) and lines (from, to); AssertionError on any other statement."""
    lines = text.splitlines()
    assert lines[:4] == ["---", lines[1], "---", "flowchart LR"]
    assert re.fullmatch(r'title: "[^"]*"', lines[1])
    boxes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    for line in lines[4:]:
        if box := _BOX.match(line):
            assert box.group(1) not in boxes
            boxes[box.group(1)] = box.group(2)
        elif edge := _LINE.match(line):
            edges.append((edge.group(1), edge.group(3)))
        elif _CLASS.match(line):
            assert set(line.split()[1].split(",")) <= set(boxes)
        else:
            assert _CLASSDEF.match(line), f"not a known statement: {line!r}"
    assert {n for e in edges for n in e} <= set(boxes)
    return boxes, edges


def desired(kit: str) -> StackGraph:
    path = EXAMPLES / f"{kit}.yaml"
    k = load_kombination(path.read_text(), filename=str(path))
    return build_graph(k, revision=1, source="current", deployed=False, observed=None)


def hostile_graph() -> StackGraph:
    return StackGraph(
        stack="evil",
        revision=1,
        source="current",
        stackkit="base-homelab",
        platform="docker",
        domain="evil.home.arpa",
        live=True,
        observed_at=None,
        error=None,
        elements=[
            GraphElement(id="node:a", kind="node", label=HOSTILE, state="unreachable"),
            GraphElement(
                id="service:b",
                kind="service",
                label="web",
                state="stopped",
                attrs={"image": HOSTILE, "replicas": 1},
            ),
        ],
        edges=[
            GraphEdge(
                id="placement:service:b->node:a",
                kind="placement",
                source="service:b",
                target="node:a",
                label=HOSTILE,
                state="stopped",
                replicas=1,
                running=0,
            )
        ],
    )


@pytest.mark.parametrize("kit", KITS)
def test_mermaid_of_each_kit_parses_and_draws_every_element(kit: str) -> None:
    graph = desired(kit)
    boxes, edges = parse_mermaid(to_mermaid(graph))

    assert len(boxes) == len(graph.elements) and len(edges) == len(graph.edges)
    for element, label in zip(graph.elements, boxes.values(), strict=True):
        assert escape(element.label) in label


def test_mermaid_escapes_hostile_names() -> None:
    text = to_mermaid(hostile_graph())
    boxes, edges = parse_mermaid(text)

    assert len(boxes) == 2 and edges == [("n1", "n0")]
    # The name's quote is an entity code, so its "click" stays inside the label: no
    # statement of its own (parse_mermaid accepts known statements only).
    assert not any(line.lstrip().startswith("click") for line in text.splitlines())
    assert len(text.splitlines()) == 4 + 2 + 1 + 2 + 2  # a newline in a name is no new line
    for bad in ('"]', "<script>", "`", "%%", "{{y}}", "|z|", "\\"):
        assert bad not in text.replace('"]\n', "\n").replace('")\n', "\n")
    assert "#60;script#62;" in text  # '<' and '>' as entity codes, drawn as themselves


@pytest.mark.parametrize("kit", KITS)
def test_svg_of_each_kit_is_xml_from_dot_with_every_label(kit: str) -> None:
    graph = desired(kit)
    root = ET.fromstring(to_svg(graph))

    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    for element in graph.of_kind("node") + graph.of_kind("service"):
        assert element.label in texts, element.label
    # Each element keeps its stable id in the SVG (a page can find and restyle it).
    ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
    assert {e.id for e in graph.elements} <= ids


def test_svg_keeps_hostile_names_as_text() -> None:
    dot = to_dot(hostile_graph())
    assert '\\"]; click' in dot  # the quote is escaped inside the DOT string
    root = ET.fromstring(to_svg(hostile_graph()))

    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("<script>" in t for t in texts)  # text, not an element
    assert not list(root.iter("{http://www.w3.org/2000/svg}script"))
    assert not list(root.iter("script"))


def test_svg_without_dot_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(ServiceUnavailableError, match="apt-get install graphviz"):
        to_svg(desired("base-homelab"))
