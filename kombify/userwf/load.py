"""Workflow files: parse with lines, check the schema and the references, build the model.

:func:`validate_workflow_source` is the one entry point (the CLI, the API, schedules and the
interpreter all use it): the same text always gives the same problems, each at a field path
and the line it is written on, as ``kombify validate`` reports kombination files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from kombify.errors import SpecError
from kombify.specs.problem import Problem, sort_problems
from kombify.specs.quantities import parse_duration
from kombify.specs.schema import schema_problems, suggest
from kombify.specs.source import Source, join, load_source
from kombify.userwf import expr

SCHEMA_FILE = "schema.json"
ACTIONS = ("run", "http", "sleep", "deploy", "destroy", "rollback", "restart", "webhook", "notify")
OUTPUTS: dict[str, tuple[str, ...]] = {
    "run": ("stdout", "stderr", "exit_code"),
    "http": ("status", "body"),
    "webhook": ("status", "body"),
    "deploy": ("deployment", "revision", "state"),
    "destroy": ("deployment", "revision", "state"),
    "rollback": ("deployment", "revision", "state"),
    "restart": ("replicas",),
    "sleep": (),
    "notify": (),
}
# Where ``${{ secrets.NAME }}`` may stand: resolved inside the activity, so a secret's value
# is never in the workflow's history, its progress or its logs.
SECRET_FIELDS = {("http", "headers"), ("webhook", "headers"), ("webhook", "url")}
SECRET_NAME = r"^[A-Z][A-Z0-9_]{0,62}$"
DEFAULT_TIMEOUTS = {
    "run": 600,
    "http": 30,
    "webhook": 30,
    "notify": 60,
    "restart": 300,
    "deploy": 3600,
    "destroy": 3600,
    "rollback": 3600,
}


@lru_cache(maxsize=1)
def schema_text() -> str:
    """The workflow file JSON Schema as shipped (``kombify workflow schema``)."""
    return resources.files("kombify.userwf").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text()))


@dataclass(frozen=True)
class Retry:
    """A step's retry policy: ``attempts`` in all, the first wait ``backoff`` seconds."""

    attempts: int = 1
    backoff: int = 1
    factor: float = 2.0
    max_backoff: int | None = None


@dataclass(frozen=True)
class Step:
    """One step: its action (``kind``) with the action's fields as written."""

    id: str
    kind: str
    action: Any
    path: str
    name: str = ""
    condition: str | None = None
    timeout: int = 60
    retries: Retry = field(default_factory=Retry)
    continue_on_error: bool = False


@dataclass(frozen=True)
class Group:
    """Steps that run at the same time; ``id`` is ``""`` when the file gives none."""

    id: str
    steps: tuple[Step, ...]
    path: str
    name: str = ""
    condition: str | None = None


@dataclass(frozen=True)
class Input:
    """An input of the workflow (``--input name=value``)."""

    name: str
    description: str = ""
    default: str | None = None
    required: bool = False


@dataclass(frozen=True)
class WorkflowFile:
    """A valid workflow file."""

    name: str
    description: str
    inputs: tuple[Input, ...]
    steps: tuple[Step | Group, ...]
    on_failure: tuple[Step, ...]

    def all_steps(self) -> Iterator[Step]:
        """Every step in order: the main steps (groups opened), then ``on_failure``."""
        for item in self.steps:
            if isinstance(item, Group):
                yield from item.steps
            else:
                yield item
        yield from self.on_failure


class WorkflowFileError(SpecError):
    """A workflow file is invalid; ``problems`` lists every problem found, sorted by line."""

    def __init__(self, problems: list[Problem], *, filename: str = "workflow.yaml") -> None:
        self.problems = problems
        self.filename = filename
        first = problems[0].format(filename) if problems else f"{filename}: invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more)


def validate_workflow_source(
    source: str, filename: str = "workflow.yaml"
) -> WorkflowFile | list[Problem]:
    """Validate a workflow file.

    Args:
        source: The YAML text.
        filename: Only for messages (problems carry no file name; ``Problem.format`` adds it).

    Returns:
        The model when the file is valid, else every problem found (never empty), sorted by line.
    """
    del filename
    try:
        parsed = load_source(source, expected="a workflow (kind: Workflow)")
        if parsed.data is None and parsed.problems:
            return sort_problems(parsed.problems)
        problems = list(parsed.problems)
        if not isinstance(parsed.data, dict):
            where = parsed.line_of("")
            message = "expected a mapping with apiVersion, kind, metadata, spec"
            return sort_problems([*problems, Problem("", where, message)])
        found = schema_problems(parsed, validator=_validator())
        problems += found
        if found:
            return sort_problems(problems)
        checker = _Checker(parsed)
        model = checker.model()
        problems += checker.problems
    except RecursionError:
        return [Problem("", 1, "the document is too deeply nested")]
    if problems:
        return sort_problems(problems)
    return model


def workflow_problems(source: str, filename: str = "workflow.yaml") -> list[Problem]:
    """Just the problems (empty when valid)."""
    result = validate_workflow_source(source, filename)
    return result if isinstance(result, list) else []


def load_workflow(source: str, filename: str = "workflow.yaml") -> WorkflowFile:
    """The model of a valid file.

    Raises:
        WorkflowFileError: (a :class:`kombify.errors.SpecError`) with ``problems``.
    """
    result = validate_workflow_source(source, filename)
    if isinstance(result, list):
        raise WorkflowFileError(result, filename=filename)
    return result


def resolve_inputs(model: WorkflowFile, given: Mapping[str, str]) -> dict[str, str]:
    """The run's input values: given ones, then defaults.

    Raises:
        SpecError: An input the file does not declare, or a required one missing.
    """
    declared = {item.name: item for item in model.inputs}
    for name in given:
        if name not in declared:
            known = ", ".join(declared) or "none"
            hint = suggest(name, declared)
            raise SpecError(f"unknown input `{name}`{hint}; the workflow's inputs: {known}")
    values: dict[str, str] = {}
    for item in model.inputs:
        if item.name in given:
            values[item.name] = str(given[item.name])
        elif item.default is not None:
            values[item.name] = item.default
        elif item.required:
            raise SpecError(f"input `{item.name}` is required: give it with --input {item.name}=…")
        else:
            values[item.name] = ""
    return values


def _scalar_text(value: Any) -> str:
    return expr.text_of(value)


class _Checker:
    """Builds the model from schema-valid data and checks what a schema cannot."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.problems: list[Problem] = []
        self.first_id: dict[str, int | None] = {}
        self.kinds: dict[str, str] = {}  # step id -> action ("group" for a group)
        self.inputs: set[str] = set()

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, self.source.line_of(path), message))

    def model(self) -> WorkflowFile:
        data: dict[str, Any] = self.source.data  # type: ignore[assignment]
        spec = data["spec"]
        inputs = tuple(self.input(name, value) for name, value in spec.get("inputs", {}).items())
        self.inputs = {item.name for item in inputs}
        steps: list[Step | Group] = []
        for index, item in enumerate(spec["steps"]):
            path = join("spec.steps", index)
            steps.append(self.group(item, path) if "parallel" in item else self.step(item, path))
        on_failure = tuple(
            self.step(item, join("spec.on_failure", index))
            for index, item in enumerate(spec.get("on_failure", []))
        )
        self.check_references(steps, on_failure)
        return WorkflowFile(
            name=data["metadata"]["name"],
            description=data["metadata"].get("description", ""),
            inputs=inputs,
            steps=tuple(steps),
            on_failure=on_failure,
        )

    def input(self, name: str, value: dict[str, Any]) -> Input:
        path = join("spec.inputs", name)
        default = value.get("default")
        required = bool(value.get("required", False))
        if required and default is not None:
            self.problem(join(path, "required"), "a required input has no default: drop one")
        return Input(
            name=name,
            description=value.get("description", ""),
            default=None if default is None else _scalar_text(default),
            required=required,
        )

    def claim(self, step_id: str, path: str, kind: str) -> None:
        id_path = join(path, "id")
        if step_id in self.first_id:
            first = self.first_id[step_id]
            self.problem(id_path, f'duplicate step id "{step_id}" (first at line {first})')
            return
        self.first_id[step_id] = self.source.line_of(id_path)
        self.kinds[step_id] = kind

    def group(self, item: dict[str, Any], path: str) -> Group:
        steps = tuple(
            self.step(child, join(join(path, "parallel"), index))
            for index, child in enumerate(item["parallel"])
        )
        group_id = item.get("id", "")
        if group_id:
            self.claim(group_id, path, "group")
        return Group(
            id=group_id,
            steps=steps,
            path=path,
            name=item.get("name", ""),
            condition=item.get("if"),
        )

    def step(self, item: dict[str, Any], path: str) -> Step:
        present = [name for name in ACTIONS if name in item]
        kind = present[0] if present else "sleep"
        if not present:
            self.problem(path, f"a step needs one action: {', '.join(ACTIONS)}")
        for extra in present[1:]:
            self.problem(join(path, extra), f"a step has one action; this one already has {kind}")
        self.claim(item["id"], path, kind)
        action = item.get(kind, "1s")
        if kind == "run":
            self.check_run(action, join(path, "run"))
        if kind == "sleep":
            action = {"seconds": parse_duration(action)}
        retries = self.retries(item.get("retries"), join(path, "retries"))
        timeout = self.timeout(item, kind, action, path) if present else 1
        return Step(
            id=item["id"],
            kind=kind,
            action=action,
            path=path,
            name=item.get("name", ""),
            condition=item.get("if"),
            timeout=timeout,
            retries=retries,
            continue_on_error=bool(item.get("continue_on_error", False)),
        )

    def check_run(self, action: dict[str, Any], path: str) -> None:
        if "node" in action and "service" in action:
            self.problem(join(path, "service"), "give `node` or `service`, not both")
        elif "node" not in action and "service" not in action:
            self.problem(path, "needs `node` (a command on a node) or `service` (in a service)")

    def timeout(self, item: dict[str, Any], kind: str, action: Any, path: str) -> int:
        if kind == "sleep":
            if "timeout" in item:
                self.problem(join(path, "timeout"), "a sleep step has no timeout")
            return int(action["seconds"] or 1)
        wait = action.get("wait") if kind == "http" else None
        waited = (parse_duration(wait["timeout"]) or 0) if wait else 0
        if "timeout" not in item:
            return DEFAULT_TIMEOUTS[kind] + waited
        seconds = parse_duration(item["timeout"]) or 1
        if seconds <= waited:
            self.problem(
                join(path, "timeout"),
                f"the step's timeout ({item['timeout']}) must be longer than its "
                f"http.wait.timeout ({wait['timeout'] if wait else ''})",
            )
        return seconds

    def retries(self, value: Any, path: str) -> Retry:
        if value is None:
            return Retry()
        if isinstance(value, int):
            return Retry(attempts=value)
        retry = Retry(
            attempts=value["attempts"],
            backoff=parse_duration(value.get("backoff", "1s")) or 1,
            factor=float(value.get("factor", 2.0)),
            max_backoff=parse_duration(value["max_backoff"]) if "max_backoff" in value else None,
        )
        if retry.max_backoff is not None and retry.max_backoff < retry.backoff:
            self.problem(
                join(path, "max_backoff"),
                f"must be at least the backoff ({value.get('backoff', '1s')})",
            )
        return retry

    def check_references(self, steps: list[Step | Group], on_failure: tuple[Step, ...]) -> None:
        done: set[str] = set()
        for item in steps:
            if item.condition is not None:
                self.check_condition(item.condition, join(item.path, "if"), done, failure=False)
            if isinstance(item, Group):
                for step in item.steps:
                    self.check_step(step, done, failure=False)
                done |= {step.id for step in item.steps}
                if item.id:
                    done.add(item.id)
            else:
                self.check_step(item, done, failure=False)
                done.add(item.id)
        for step in on_failure:
            self.check_step(step, done, failure=True)
            done.add(step.id)

    def check_step(self, step: Step, done: set[str], *, failure: bool) -> None:
        if step.condition is not None:
            self.check_condition(step.condition, join(step.path, "if"), done, failure=failure)
        for path, text, secret_ok in _strings(step.action, join(step.path, step.kind), step.kind):
            for inner, _, _ in expr.template_parts(text):
                self.check_expression(inner, path, done, failure=failure, secret_ok=secret_ok)

    def check_condition(self, text: str, path: str, done: set[str], *, failure: bool) -> None:
        self.check_expression(expr.condition_text(text), path, done, failure=failure)

    def check_expression(
        self, text: str, path: str, done: set[str], *, failure: bool, secret_ok: bool = False
    ) -> None:
        try:
            node = expr.parse(text)
        except expr.ExpressionError as exc:
            self.problem(path, f"expression `{text.strip()[:80]}`: {exc}")
            return
        for ref in expr.refs(node):
            message = self.ref_problem(ref, done, failure=failure)
            if (
                message is None
                and ref.parts[0] == "secrets"
                and not (secret_ok and isinstance(node, expr.Ref))
            ):
                message = (
                    "secrets may stand only alone in a `${{ }}` of http/webhook headers or a "
                    "webhook url (they are resolved by the worker, never stored)"
                )
            if message:
                self.problem(path, f"`{ref.text}`: {message}")

    def ref_problem(self, ref: expr.Ref, done: set[str], *, failure: bool) -> str | None:
        root, rest = ref.parts[0], ref.parts[1:]
        if root == "inputs":
            if len(rest) != 1:
                return "expected inputs.<name>"
            if rest[0] not in self.inputs:
                known = ", ".join(sorted(self.inputs)) or "none"
                return f"no input `{rest[0]}`{suggest(rest[0], self.inputs)} (inputs: {known})"
            return None
        if root == "failure":
            if not failure:
                return "failure.* is known only in on_failure steps"
            if len(rest) != 1 or rest[0] not in ("step", "error"):
                return "expected failure.step or failure.error"
            return None
        if root == "secrets":
            if len(rest) != 1 or not _is_secret_name(rest[0]):
                return "expected secrets.NAME (uppercase letters, digits and '_')"
            return None
        if root != "steps":
            hint = suggest(root, ("steps", "inputs", "failure", "secrets"))
            return f"unknown name `{root}`{hint}: expected steps., inputs., failure. or secrets."
        if not rest:
            return "expected steps.<id>.outcome or steps.<id>.outputs.<key>"
        step_id = rest[0]
        if step_id not in self.kinds:
            return f"no step `{step_id}`{suggest(step_id, self.kinds)}"
        if step_id not in done:
            return f"step `{step_id}` has not run yet here (it runs later or at the same time)"
        kind = self.kinds[step_id]
        if rest[1:] == ("outcome",):
            return None
        if len(rest) == 3 and rest[1] == "outputs":
            outputs = OUTPUTS.get(kind, ())
            if rest[2] in outputs:
                return None
            listed = ", ".join(outputs) or "none"
            article = "an" if kind in ("http", "notify") else "a"
            what = "a parallel group" if kind == "group" else f"{article} {kind} step"
            hint = suggest(rest[2], outputs)
            return f"{what} has no output `{rest[2]}`{hint} (outputs: {listed})"
        return "expected steps.<id>.outcome or steps.<id>.outputs.<key>"


def _is_secret_name(name: str) -> bool:
    import re

    return re.match(SECRET_NAME, name) is not None


def _strings(value: Any, path: str, kind: str) -> Iterator[tuple[str, str, bool]]:
    """Every string in an action with its path and whether a secret may stand there."""
    top = path
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, str):
            field_name = where[len(top) + 1 :].split(".", 1)[0].split("[", 1)[0]
            yield where, current, (kind, field_name) in SECRET_FIELDS
        elif isinstance(current, dict):
            stack.extend((child, join(where, str(key))) for key, child in current.items())
        elif isinstance(current, list):
            stack.extend((child, join(where, index)) for index, child in enumerate(current))


# Read the schema when the module is imported, not inside a workflow's sandbox on first use.
_validator()
