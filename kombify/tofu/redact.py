"""Keep secret values out of everything the wrapper lets go of: streamed lines, errors, outputs.

The CLI hides sensitive values in its own rendering, but not in what provisioners print, in
some error messages, or where a config unwraps them with ``nonsensitive()``. So kombify masks
the values themselves. They come from two places: what the caller passes, and the work
directory itself: variables declared ``sensitive`` whose values sit in a tfvars file there
(that is how the unifier hands secrets to the CLI; they must never travel through a
Temporal history, so an activity cannot be handed them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

MASK = "(sensitive value)"
# Lines of a multi-line secret (a private key) are masked one by one as well; shorter lines
# ("}" or "") would mask half the log without protecting anything.
_MIN_PIECE = 4

_HCL_VARIABLE = re.compile(r'^\s*variable\s+"([^"]+)"\s*\{', re.MULTILINE)
_HCL_SENSITIVE = re.compile(r"\bsensitive\s*=\s*true\b")
_HCL_TFVAR = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*"((?:[^"\\]|\\.)*)"', re.MULTILINE)


class Redactor:
    """Masks a fixed set of secret values in text.

    Args:
        secrets: The secret values (names are not needed to mask, only values).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        needles: set[str] = set()
        for value in secrets:
            if not value:
                continue
            needles.add(value)
            # The same value as it appears inside JSON strings or a CLI-quoted string.
            needles.add(json.dumps(value)[1:-1])
            if "\n" in value:
                needles.update(
                    p.strip() for p in value.splitlines() if len(p.strip()) >= _MIN_PIECE
                )
        ordered = sorted(needles, key=len, reverse=True)  # longest first: no partial leftovers
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        """Return ``text`` with every secret value replaced by ``(sensitive value)``."""
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, data: Any) -> Any:
        """Mask secrets in every string inside a JSON-like value (outputs)."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if isinstance(data, dict):
            return {k: self.value(v) for k, v in data.items()}
        return data


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, list):
        for item in data:
            yield from _strings(item)
    elif isinstance(data, dict):
        for item in data.values():
            yield from _strings(item)


def _hcl_block(text: str, start: int) -> str:
    """The body of the ``{ ... }`` block opening at ``start`` (braces counted, naively)."""
    depth = 0
    for index in range(start, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[start : index + 1]
    return text[start:]


def sensitive_variable_names(workdir: Path) -> set[str]:
    """Names of the root module's variables declared ``sensitive = true``.

    Reads ``*.tf.json`` exactly and ``*.tf`` with a small scan (no HCL parser is shipped); a
    file that cannot be read is skipped, since the CLI will report it properly.
    """
    names: set[str] = set()
    for path in sorted(workdir.glob("*.tf.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        variables = document.get("variable") if isinstance(document, dict) else None
        blocks = variables if isinstance(variables, list) else [variables or {}]
        for block in blocks:
            for name, spec in (block or {}).items():
                if isinstance(spec, dict) and spec.get("sensitive") is True:
                    names.add(name)
    for path in sorted(workdir.glob("*.tf")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for match in _HCL_VARIABLE.finditer(text):
            if _HCL_SENSITIVE.search(_hcl_block(text, match.end() - 1)):
                names.add(match.group(1))
    return names


def _tfvars_values(workdir: Path) -> dict[str, Any]:
    """Values the CLI loads by itself: ``terraform.tfvars[.json]``, ``*.auto.tfvars[.json]``."""
    values: dict[str, Any] = {}
    files = [workdir / "terraform.tfvars", workdir / "terraform.tfvars.json"]
    files += sorted(workdir.glob("*.auto.tfvars")) + sorted(workdir.glob("*.auto.tfvars.json"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".json":
            try:
                document = json.loads(text)
            except ValueError:
                continue
            if isinstance(document, dict):
                values.update(document)
        else:
            for match in _HCL_TFVAR.finditer(text):
                try:
                    values[match.group(1)] = json.loads(f'"{match.group(2)}"')
                except ValueError:  # an HCL-only escape: the raw text is the safer guess
                    values[match.group(1)] = match.group(2)
    return values


def discover_secrets(workdir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Values of the sensitive variables set in ``workdir``'s tfvars files or ``TF_VAR_*``.

    Args:
        workdir: The stack's work directory.
        env: The environment the CLI will run with (``TF_VAR_<name>`` values count too).

    Returns:
        ``{variable name: value}``; a structured value contributes each string inside it,
        keyed ``name[i]``.
    """
    names = sensitive_variable_names(workdir)
    if not names:
        return {}
    found: dict[str, str] = {}
    candidates: dict[str, Any] = dict(_tfvars_values(workdir))
    for key, value in (env or {}).items():
        if key.startswith("TF_VAR_"):
            candidates[key[len("TF_VAR_") :]] = value
    for name, value in candidates.items():
        if name not in names:
            continue
        for index, text in enumerate(_strings(value)):
            found[name if index == 0 else f"{name}[{index}]"] = text
    return found
