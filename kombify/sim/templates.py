"""Simulation templates: YAML files that describe a simulation, validated with line numbers.

Built-in templates ship in ``kombify/sim/templates/``; users add their own as
``$KOMBIFY_HOME/templates/<name>.yaml`` (a user template with a built-in's name wins). Every
problem is reported as ``FILE:LINE: path: message``, all at once, before anything is made.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from kombify.errors import NotFoundError, SpecError
from kombify.names import SIMULATION_NAME_MAX, check_name, check_simulation_name, contained
from kombify.settings import get_settings
from kombify.sim.models import (
    DEFAULT_CPUS,
    DEFAULT_MEMORY_MB,
    DEFAULT_USER,
    NodeSpec,
    SimulationSpec,
)

_MEMORY_RE = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<unit>[mMgG])$")


@dataclass(frozen=True)
class TemplateProblem:
    """One validation problem.

    Attributes:
        file: The file (or ``<string>``).
        line: 1-based line of the offending value.
        path: Dotted path of the offending field (``groups[0].nodes[1].memory``).
        message: What is wrong and what was expected.
    """

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path or '(top)'}: {self.message}"


class TemplateError(SpecError):
    """A template is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[TemplateProblem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


@dataclass(frozen=True)
class Template:
    """A loaded, valid template.

    Attributes:
        name: Template name (its ``name`` field).
        description: Its description.
        source: ``builtin`` or ``user``.
        path: The file it came from.
        spec: The simulation it describes (named after the template).
    """

    name: str
    description: str
    source: str
    path: Path
    spec: SimulationSpec

    def to_public(self) -> dict[str, Any]:
        """The JSON shape of ``kombify sim templates --json`` and the API."""
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "path": str(self.path),
            "nodes": [
                {"name": n.name, "group": n.group, "type": n.type, "role": n.role}
                for n in self.spec.nodes
            ],
        }


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The template JSON Schema (``kombify/sim/template.schema.json``)."""
    text = resources.files("kombify.sim").joinpath("template.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def parse_memory(value: int | str) -> int:
    """Memory in MiB from ``512`` (MiB), ``"512m"`` or ``"1.5g"``."""
    if isinstance(value, int):
        return value
    match = _MEMORY_RE.match(value)
    if not match:
        raise ValueError(f"bad memory size `{value}`")
    number = float(match["number"])
    return int(number * 1024) if match["unit"].lower() == "g" else int(number)


def format_memory(memory_mb: int) -> str:
    """The inverse of :func:`parse_memory`, choosing ``g`` for whole GiB."""
    return f"{memory_mb // 1024}g" if memory_mb % 1024 == 0 else f"{memory_mb}m"


def load_text(text: str, *, file: str = "<string>") -> SimulationSpec:
    """Validate template YAML and return the simulation it describes.

    Raises:
        TemplateError: Every problem, as ``FILE:LINE: path: message``.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError([TemplateProblem(file, line, "", f"invalid YAML: {problem}")]) from exc
    if not isinstance(data, dict) or root is None:
        raise TemplateError([TemplateProblem(file, 1, "", "expected a mapping with `name` and "
                                             "`groups`")])
    validator = jsonschema.Draft202012Validator(schema())
    problems = [
        TemplateProblem(file, _error_line(root, error),
                        _dotted(list(error.absolute_path)), _message(error))
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    ]
    if not problems:
        problems = _semantic_problems(data, root, file)
    if problems:
        raise TemplateError(sorted(problems, key=lambda p: (p.line, p.path)))
    return _to_spec(data)


def load_file(path: Path) -> SimulationSpec:
    """:func:`load_text` for a file.

    Raises:
        TemplateError: The file is invalid.
        NotFoundError: It does not exist.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFoundError(f"template file `{path}` does not exist") from exc
    return load_text(text, file=str(path))


def _semantic_problems(data: dict[str, Any], root: yaml.Node, file: str) -> list[TemplateProblem]:
    problems: list[TemplateProblem] = []
    seen: dict[str, str] = {}
    for g_index, group in enumerate(data["groups"]):
        for n_index, node in enumerate(group["nodes"]):
            path: list[str | int] = ["groups", g_index, "nodes", n_index, "name"]
            if node["name"] in seen:
                problems.append(TemplateProblem(
                    file, _line_of(root, path), _dotted(path),
                    f"node name `{node['name']}` is already used at {seen[node['name']]}",
                ))
            else:
                seen[node["name"]] = _dotted(path)
            if "memory" in node and parse_memory(node["memory"]) < 64:
                memory_path: list[str | int] = [*path[:-1], "memory"]
                problems.append(TemplateProblem(
                    file, _line_of(root, memory_path), _dotted(memory_path),
                    "memory must be at least 64m",
                ))
    return problems


def _to_spec(data: dict[str, Any]) -> SimulationSpec:
    nodes = [
        NodeSpec(
            name=node["name"],
            group=group["name"],
            type=node.get("type", group.get("type", "local")),
            cpus=float(node.get("cpus", DEFAULT_CPUS)),
            memory_mb=parse_memory(node.get("memory", DEFAULT_MEMORY_MB)),
            user=node.get("user", DEFAULT_USER),
            role=node.get("role", ""),
            ports=[int(port) for port in node.get("ports", [])],
        )
        for group in data["groups"]
        for node in group["nodes"]
    ]
    return SimulationSpec(name=data["name"], nodes=nodes, description=data.get("description", ""))


def _line_of(root: yaml.Node, path: list[str | int]) -> int:
    """1-based line of the YAML node at ``path`` (or of its deepest existing parent)."""
    node = root
    for part in path:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def _error_line(root: yaml.Node, error: jsonschema.ValidationError) -> int:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        # Point at the first unexpected key, not at the mapping that holds it.
        known = _subschema(error).get("properties", {})
        extra = [key for key in error.instance if key not in known]
        if extra:
            return _line_of(root, [*path, extra[0]])
    return _line_of(root, path)


def _dotted(path: list[Any]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _subschema(error: jsonschema.ValidationError) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


def _message(error: jsonschema.ValidationError) -> str:
    sub = _subschema(error)
    if error.validator == "pattern" and sub.get("description"):
        return f"{error.instance!r} is invalid: expected {sub['description']}"
    if error.validator == "oneOf" and "memory" in [str(p) for p in error.absolute_path]:
        return f"{error.instance!r} is not a size: expected MiB as a number, or like 512m, 1g"
    if error.validator == "not" and error.instance == 22:
        return "port 22 is SSH, which every node publishes already"
    if error.validator == "additionalProperties":
        return f"{error.message} (allowed: {', '.join(sorted(sub.get('properties', {})))})"
    return str(error.message)


# --------------------------------------------------------------------------- discovery
def builtin_dir() -> Path:
    """Folder of the built-in templates."""
    return Path(str(resources.files("kombify.sim").joinpath("templates")))


def user_dir() -> Path:
    """Folder of the user's templates: ``$KOMBIFY_HOME/templates``."""
    return get_settings().home / "templates"


def list_templates() -> list[Template]:
    """Every valid template, built-in and user, by name (user templates override).

    Raises:
        TemplateError: A user template is invalid (so the user learns about it).
    """
    found: dict[str, Template] = {}
    for source, folder in (("builtin", builtin_dir()), ("user", user_dir())):
        if not folder.is_dir():
            continue
        for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
            spec = load_file(path)
            found[spec.name] = Template(spec.name, spec.description, source, path, spec)
    return [found[name] for name in sorted(found)]


def get_template(name: str) -> Template:
    """A template of the library (built-in or user) by name; never a path.

    Raises:
        InvalidName: ``name`` is not a template name.
        NotFoundError: No such template.
        TemplateError: It is invalid.
    """
    check_name(name, what="template name", limit=SIMULATION_NAME_MAX)
    found = list_templates()
    for template in found:
        if template.name == name:
            return template
    names = ", ".join(t.name for t in found)
    raise NotFoundError(f"template `{name}` does not exist (known: {names})")


def template_file(path: Path) -> Template:
    """A template from a YAML file of the user's own (the CLI's `sim apply FILE`)."""
    spec = load_file(path)
    return Template(spec.name, spec.description, "file", path, spec)


def spec_to_yaml(spec: SimulationSpec, *, name: str | None = None) -> str:
    """Template YAML that re-creates ``spec`` (used by export)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for node in spec.nodes:
        entry: dict[str, Any] = {"name": node.name}
        if node.type != "local":
            entry["type"] = node.type
        if node.role:
            entry["role"] = node.role
        if node.user != DEFAULT_USER:
            entry["user"] = node.user
        entry["cpus"] = int(node.cpus) if float(node.cpus).is_integer() else node.cpus
        entry["memory"] = format_memory(node.memory_mb)
        if node.ports:
            entry["ports"] = list(node.ports)
        groups.setdefault(node.group, []).append(entry)
    document: dict[str, Any] = {"name": name or spec.name}
    if spec.description:
        document["description"] = spec.description
    document["groups"] = [{"name": group, "nodes": nodes} for group, nodes in groups.items()]
    return yaml.safe_dump(document, sort_keys=False)


def save_user_template(text: str) -> Template:
    """Validate ``text`` and store it as a user template (``$KOMBIFY_HOME/templates``).

    Raises:
        TemplateError: It is invalid (nothing is written).
    """
    spec = load_text(text, file="<upload>")
    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = contained(folder, check_simulation_name(spec.name)).with_suffix(".yaml")
    path.write_text(text, encoding="utf-8")
    return Template(spec.name, spec.description, "user", path, spec)
