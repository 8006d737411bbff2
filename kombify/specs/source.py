"""YAML loading that remembers where every field path is written.

PyYAML's composer gives nodes with start marks; we build plain Python data from them
ourselves (instead of ``yaml.safe_load``) so each field path can be mapped to its line, and so
duplicate keys, which ``safe_load`` silently drops, can be reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kombify.errors import SpecError
from kombify.specs.problem import Problem

# Guards against alias bombs ("billion laughs") and absurd inputs: validation must always answer.
MAX_NODES = 200_000
MAX_DEPTH = 64
# A 200-node kombination is about 60 KiB; 1 MiB leaves room and keeps a parse well under a
# second. Checked before parsing, on bytes read with a bound (a device like /dev/zero never ends).
MAX_BYTES = 1024 * 1024
# libyaml's parser is about 10x faster than PyYAML's pure-Python one (it dominates the time
# of validating a 200-node file); both give the same nodes and marks.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def join(parent: str, key: str | int) -> str:
    """Extend a field path: ``join("spec", "nodes")`` -> ``spec.nodes``; ints index lists."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


@dataclass
class Source:
    """A parsed document plus the line of each field path in it."""

    data: object
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: str) -> int | None:
        """Line of ``path`` or, if it is not written, of its nearest written parent."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = _parent(path)


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


class _TooLarge(Exception):
    pass


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self.count = 0

    def build(self, node: yaml.Node, path: str, depth: int) -> object:
        self.count += 1
        if self.count > MAX_NODES or depth > MAX_DEPTH:
            raise _TooLarge
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, join(path, i), depth + 1) for i, item in enumerate(node.value)]
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, OverflowError, yaml.constructor.ConstructorError) as exc:
            # Timestamps like 2024-13-45 and bad !!binary parse as YAML but cannot be built.
            self.problems.append(
                Problem(
                    path, node.start_mark.line + 1, f"cannot read value: {str(exc).splitlines()[0]}"
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, object]:
        self.loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[str, object] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(Problem(path, line, "mapping keys must be plain names"))
                continue
            # The written text, not YAML 1.1's reading of it: `on:` is the key "on", not True.
            key = str(key_node.value)
            child = join(path, key)
            if key in first_line:
                self.problems.append(
                    Problem(child, line, f'duplicate key "{key}" (first at line {first_line[key]})')
                )
                continue
            first_line[key] = line
            self.lines[child] = line
            result[key] = self.build(value_node, child, depth + 1)
        return result


def size_words(size: int) -> str:
    """``1048576`` -> ``1 MiB``: how a limit is named in messages."""
    for unit, factor in (("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def too_large_message(limit: int = MAX_BYTES) -> str:
    """The one wording of the size limit, for files and texts alike."""
    return f"the document is larger than {size_words(limit)}, the limit"


def read_document(path: Path, *, what: str = "a kombination", limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of ``path``, read with a bound: at most ``limit`` + 1 bytes.

    Args:
        path: The file (or device, or pipe).
        what: What the file should be, for messages (``a kombination``, ``a template``).
        limit: Largest size accepted, in bytes.

    Raises:
        FileNotFoundError: It does not exist (callers word that one themselves).
        SpecError: It is larger than ``limit``, is not UTF-8 text, or cannot be read.
    """
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SpecError(f"cannot read `{path}`: {exc.strerror or exc}") from exc
    if len(data) > limit:
        raise SpecError(
            f"`{path}` is larger than {size_words(limit)}, the limit for {what} file"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"`{path}` is not UTF-8 text (byte {exc.start + 1}): expected {what} in YAML"
        ) from exc


def load_source(text: str, *, expected: str = "a kombination") -> Source:
    """Parse ``text`` as one YAML document; never raises.

    Args:
        text: The YAML text; more than :data:`MAX_BYTES` (UTF-8) is refused unparsed.
        expected: What the document should be, for the message about an empty one.

    Returns:
        The data with line positions; ``problems`` holds syntax errors (with line and column),
        duplicate keys and size-limit violations. ``data`` is ``None`` if nothing could be read.
    """
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        return Source(None, {}, [Problem("", 1, too_large_message())])
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return Source(
                    None, {}, [Problem("", 1, f"the file is empty: expected {expected}")]
                )
            builder = _Builder(loader)
            data = builder.build(node, "", 0)
            return Source(data, builder.lines, builder.problems)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        return Source(None, {}, [_syntax_problem(exc)])
    except yaml.YAMLError as exc:  # e.g. a reader error on a control character
        message = str(exc).splitlines()[0]
        return Source(None, {}, [Problem("", _reader_line(text, exc), f"YAML error: {message}")])
    except _TooLarge:
        return Source(None, {}, [Problem("", 1, "the document is too large or too deeply nested")])
    except RecursionError:
        return Source(None, {}, [Problem("", 1, "the document is too deeply nested")])


def _syntax_problem(exc: yaml.MarkedYAMLError) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    what = exc.problem or exc.context or "invalid YAML"
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    if mark is None:
        return Problem("", 1, f"YAML syntax error: {what}{context}")
    return Problem("", mark.line + 1, f"YAML syntax error: {what}{context}", column=mark.column + 1)


def _reader_line(text: str, exc: yaml.YAMLError) -> int:
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        return text.count("\n", 0, position) + 1
    return 1
