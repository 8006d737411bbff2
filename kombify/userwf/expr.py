"""The small expression language of ``if:`` and ``${{ … }}``: parsed, never ``eval``'d.

Grammar (GitHub Actions-like)::

    expr    := or
    or      := and ("||" and)*
    and     := not ("&&" not)*
    not     := "!" not | compare
    compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=") value)?
    value   := STRING | NUMBER | true | false | null | REF | FUNC "(" expr ("," expr)* ")"
             | "(" expr ")"
    REF     := steps.<id>.outcome | steps.<id>.outputs.<key> | inputs.<key>
             | failure.step | failure.error | secrets.<NAME>

Strings are in single or double quotes. ``==`` compares numbers as numbers when one side is a
number and the other a numeric string (``"200" == 200``), strings case-sensitively otherwise.
Functions: ``contains(text, part)``, ``startsWith(text, prefix)``, ``endsWith(text, suffix)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_LENGTH = 2048
MAX_DEPTH = 32
FUNCTIONS = {"contains": 2, "startsWith": 2, "endsWith": 2}
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
    |(?P<number>-?[0-9]+(?:\.[0-9]+)?)
    |(?P<op>==|!=|<=|>=|&&|\|\||[<>!(),])
    |(?P<ref>[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*(?:\.[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*)*)
    )""",
    re.VERBOSE,
)
_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


class ExpressionError(ValueError):
    """An expression that cannot be read; the message says where and what was expected."""


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Ref:
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node


Node = Literal | Ref | Call | Not | Binary


def _tokens(text: str) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    position = 0
    stripped_end = len(text.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            rest = text[position:]
            at = position + len(rest) - len(rest.lstrip()) + 1
            raise ExpressionError(f"unexpected `{rest.strip()[:20]}` at character {at}")
        kind = match.lastgroup or ""
        result.append((kind, match.group(kind)))
        position = match.end()
    return result


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.at = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, op: str) -> bool:
        token = self.peek()
        if token is not None and token == ("op", op):
            self.at += 1
            return True
        return False

    def expect(self, op: str) -> None:
        if not self.take(op):
            token = self.peek()
            got = f"`{token[1]}`" if token else "the end"
            raise ExpressionError(f"expected `{op}`, got {got}")

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("the expression is empty")
        node = self.or_()
        token = self.peek()
        if token is not None:
            raise ExpressionError(f"unexpected `{token[1]}` after a complete expression")
        return node

    def or_(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError("the expression is nested too deeply")
        node = self.and_()
        while self.take("||"):
            node = Binary("||", node, self.and_())
        self.depth -= 1
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.take("&&"):
            node = Binary("&&", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.take("!"):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise ExpressionError("the expression is nested too deeply")
            node: Node = Not(self.not_())
            self.depth -= 1
            return node
        return self.compare()

    def compare(self) -> Node:
        node = self.value()
        for op in ("==", "!=", "<=", ">=", "<", ">"):
            if self.take(op):
                return Binary(op, node, self.value())
        return node

    def value(self) -> Node:
        token = self.peek()
        if token is None:
            raise ExpressionError("the expression ends too early: expected a value")
        kind, text = token
        self.at += 1
        if kind == "string":
            return Literal(_unquote(text))
        if kind == "number":
            return Literal(float(text) if "." in text else int(text))
        if kind == "op" and text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if kind == "ref":
            return self.word(text)
        raise ExpressionError(f"unexpected `{text}`: expected a value")

    def word(self, text: str) -> Node:
        if text in ("true", "false"):
            return Literal(text == "true")
        if text == "null":
            return Literal(None)
        if self.take("("):
            if text not in FUNCTIONS:
                known = ", ".join(FUNCTIONS)
                raise ExpressionError(f"unknown function `{text}` (known: {known})")
            args = [self.or_()]
            while self.take(","):
                args.append(self.or_())
            self.expect(")")
            if len(args) != FUNCTIONS[text]:
                raise ExpressionError(f"`{text}` takes {FUNCTIONS[text]} arguments")
            return Call(text, tuple(args))
        return Ref(tuple(text.split(".")))


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse(text: str) -> Node:
    """Parse an expression (the inside of ``${{ }}``, or an ``if:``).

    Raises:
        ExpressionError: With what is wrong and where.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"the expression is longer than {MAX_LENGTH} characters")
    return _Parser(_tokens(text)).parse()


def condition_text(text: str) -> str:
    """An ``if:`` may be written bare or wrapped in one ``${{ }}``: the bare form."""
    stripped = text.strip()
    match = _TEMPLATE.fullmatch(stripped)
    return match.group(1) if match else stripped


def template_parts(text: str) -> Iterator[tuple[str, int, int]]:
    """The ``${{ expr }}`` parts of a string: (expression text, start, end)."""
    for match in _TEMPLATE.finditer(text):
        yield match.group(1), match.start(), match.end()


def refs(node: Node) -> Iterator[Ref]:
    """Every reference in an expression, in order."""
    if isinstance(node, Ref):
        yield node
    elif isinstance(node, Call):
        for arg in node.args:
            yield from refs(arg)
    elif isinstance(node, Not):
        yield from refs(node.operand)
    elif isinstance(node, Binary):
        yield from refs(node.left)
        yield from refs(node.right)


def lookup(ref: Ref, context: Mapping[str, Any]) -> Any:
    """The value of a reference: ``None`` when it names nothing (a skipped step's output)."""
    value: Any = context
    for part in ref.parts:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(op: str, left: Any, right: Any) -> bool:
    a, b = _number(left), _number(right)
    numeric = (
        a is not None and b is not None and not (isinstance(left, str) and isinstance(right, str))
    )
    if numeric:
        assert a is not None and b is not None
        x: Any = a
        y: Any = b
    else:
        x, y = left, right
    if op == "==":
        return bool(x == y)
    if op == "!=":
        return bool(x != y)
    if not numeric:
        x, y = text_of(left), text_of(right)
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def truthy(value: Any) -> bool:
    """``false``, ``null``, ``0`` and ``""`` are false; everything else is true."""
    return value not in (None, False, 0, "")


def text_of(value: Any) -> str:
    """How a value is written into a string: ``null`` as nothing, booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def evaluate(node: Node, context: Mapping[str, Any]) -> Any:
    """The value of a parsed expression over ``context`` (steps, inputs, failure)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ref):
        return lookup(node, context)
    if isinstance(node, Not):
        return not truthy(evaluate(node.operand, context))
    if isinstance(node, Call):
        text, part = (text_of(evaluate(arg, context)) for arg in node.args)
        if node.name == "contains":
            return part in text
        if node.name == "startsWith":
            return text.startswith(part)
        return text.endswith(part)
    if node.op == "&&":
        left = evaluate(node.left, context)
        return evaluate(node.right, context) if truthy(left) else left
    if node.op == "||":
        left = evaluate(node.left, context)
        return left if truthy(left) else evaluate(node.right, context)
    return _compare(node.op, evaluate(node.left, context), evaluate(node.right, context))


def render(text: str, context: Mapping[str, Any], *, keep: tuple[str, ...] = ()) -> str:
    """``text`` with each ``${{ expr }}`` replaced by its value.

    Args:
        text: A string from the file (already validated).
        context: Steps, inputs and failure values.
        keep: Reference roots left as written (``secrets``: resolved in the activity only).
    """

    def replace(match: re.Match[str]) -> str:
        node = parse(match.group(1))
        if isinstance(node, Ref) and node.parts[0] in keep:
            return match.group(0)
        return text_of(evaluate(node, context))

    return _TEMPLATE.sub(replace, text)
