"""Simulation templates: YAML files that describe a simulation, validated with line numbers.

Built-in templates ship in ``kombify/sim/templates/``; users add their own as
``$KOMBIFY_HOME/templates/<name>.yaml`` (a user template with a built-in's name wins). Every
problem is reported as ``FILE:LINE: path: message``, all at once, before anything is made.
"""

from __future__ import annotations

import json
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
from kombify.specs.problem import Problem, sort_problems
from kombify.specs.quantities import MIB, SHORT_UNITS, parse_size
from kombify.specs.schema import schema_problems
from kombify.specs.source import Source, join, load_source, read_document

MIN_MEMORY_MB = 64


@dataclass(frozen=True)
class TemplateProblem(Problem):
    """One validation problem: a kombination :class:`Problem` that knows its file.

    Attributes:
        file: The file (or ``<string>``); ``str()`` gives ``FILE:LINE: path: message``.
    """

    file: str = "<string>"

    def __str__(self) -> str:
        return self.format(self.file)


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


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema())


def parse_memory(value: int | str) -> int:
    """Memory in MiB from ``512`` (MiB), ``"512m"`` or ``"1.5g"`` (Docker's suffixes).

    Raises:
        ValueError: ``value`` is not a size.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    size = parse_size(value, units=SHORT_UNITS)
    if size is None:
        raise ValueError(f"bad memory size `{value}`")
    return size // MIB


def format_memory(memory_mb: int) -> str:
    """The inverse of :func:`parse_memory`, choosing ``g`` for whole GiB."""
    return f"{memory_mb // 1024}g" if memory_mb % 1024 == 0 else f"{memory_mb}m"


def load_text(text: str, *, file: str = "<string>") -> SimulationSpec:
    """Validate template YAML and return the simulation it describes.

    The YAML is read by the kombination's loader (aliases, depth and size bounded; duplicate
    keys reported) and checked by the same schema translation, so both files answer alike.

    Raises:
        TemplateError: Every problem, as ``FILE:LINE: path: message``.
    """
    source = load_source(text, expected="a template")
    problems = list(source.problems)
    if source.data is not None and not isinstance(source.data, dict):
        problems.append(Problem("", 1, "expected a mapping with `name` and `groups`"))
    elif source.data is not None:
        found = schema_problems(source, validator=_validator())
        problems += found or _semantic_problems(source)
    if problems:
        raise TemplateError([_in_file(problem, file) for problem in sort_problems(problems)])
    assert isinstance(source.data, dict)
    return _to_spec(source.data)


def load_file(path: Path) -> SimulationSpec:
    """:func:`load_text` for a file, read with the kombination's size bound.

    Raises:
        TemplateError: The file is invalid.
        SpecError: It is too large or not UTF-8 text.
        NotFoundError: It does not exist.
    """
    try:
        text = read_document(path, what="a template")
    except FileNotFoundError as exc:
        raise NotFoundError(f"template file `{path}` does not exist") from exc
    return load_text(text, file=str(path))


def _in_file(problem: Problem, file: str) -> TemplateProblem:
    return TemplateProblem(problem.path, problem.line, problem.message, problem.column, file)


def _semantic_problems(source: Source) -> list[Problem]:
    assert isinstance(source.data, dict)
    problems: list[Problem] = []
    seen: dict[str, str] = {}
    for g_index, group in enumerate(source.data["groups"]):
        for n_index, node in enumerate(group["nodes"]):
            path = join(join(join(join("", "groups"), g_index), "nodes"), n_index)
            name_path = join(path, "name")
            if node["name"] in seen:
                problems.append(Problem(
                    name_path, source.line_of(name_path),
                    f"node name `{node['name']}` is already used at {seen[node['name']]}",
                ))
            else:
                seen[node["name"]] = name_path
            if "memory" in node and parse_memory(node["memory"]) < MIN_MEMORY_MB:
                memory_path = join(path, "memory")
                problems.append(Problem(
                    memory_path, source.line_of(memory_path),
                    f"memory must be at least {MIN_MEMORY_MB}m",
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
