"""Names that become paths, container names or URLs: validated here, and only here.

Every name or id a user hands kombify (stack, node, simulation, template, group, organisation,
deployment id) ends up in a filesystem path under ``$KOMBIFY_HOME``, in a Docker object name or
in an API URL. One rule covers them all: a DNS label (RFC 1123), the rule the kombination spec
already uses for ``metadata.name`` and node names. A DNS label cannot be ``..``, cannot hold
``/``, ``%`` or a NUL byte, and is at most 63 characters long, so a name that passed
:func:`check_name` can never climb out of the folder it is joined to. :func:`contained` checks
that anyway, after resolving symlinks, for every path built from names.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from kombify.errors import SpecError

NAME_MAX = 63
# A simulation's name prefixes its nodes' container, network and volume names.
SIMULATION_NAME_MAX = 32
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAME_RE = re.compile(NAME_PATTERN)
NAME_HINT = (
    "a DNS label: lowercase letters, digits and '-', starting and ending with a letter or "
    "digit, at most {limit} characters"
)
# Deployment ids are uuid4 hex strings (kombify.db.models.new_id).
DEPLOYMENT_ID_PATTERN = r"^[0-9a-f]{32}$"
_DEPLOYMENT_ID_RE = re.compile(DEPLOYMENT_ID_PATTERN)


class InvalidName(SpecError):
    """A name or id is not one kombify accepts; nothing was read or changed."""

    code = "invalid-name"
    status = 422


def _shown(value: str) -> str:
    # Bounded and printable: the value may be 10 MB of anything.
    text = value if len(value) <= 40 else value[:37] + "..."
    return text.encode("unicode_escape").decode("ascii")


def is_name(value: object, *, limit: int = NAME_MAX) -> bool:
    """Whether ``value`` is a DNS label of at most ``limit`` characters."""
    return isinstance(value, str) and len(value) <= limit and _NAME_RE.fullmatch(value) is not None


def check_name(value: object, *, what: str = "name", limit: int = NAME_MAX) -> str:
    """``value`` if it is a valid name, else :class:`InvalidName` saying what was expected.

    Args:
        value: The name as given.
        what: What it names, for the message (``simulation name``, ``stack name``).
        limit: Maximum length (simulations are shorter: their nodes' container names carry it).
    """
    if is_name(value, limit=limit):
        return str(value)
    shown = _shown(value) if isinstance(value, str) else repr(value)
    reason = "is empty" if value == "" else "is not valid"
    raise InvalidName(f"{what} `{shown}` {reason}: expected {NAME_HINT.format(limit=limit)}")


def check_simulation_name(value: object) -> str:
    """``value`` if it is a valid simulation name (a name of at most 32 characters)."""
    return check_name(value, what="simulation name", limit=SIMULATION_NAME_MAX)


def check_schedule_name(value: object) -> str:
    """``value`` if it is a valid schedule name (a name of at most 63 characters)."""
    return check_name(value, what="schedule name")


def check_deployment_id(value: object) -> str:
    """``value`` if it has the shape of a deployment id (32 hex digits), else InvalidName."""
    if isinstance(value, str) and _DEPLOYMENT_ID_RE.fullmatch(value):
        return value
    shown = _shown(value) if isinstance(value, str) else repr(value)
    raise InvalidName(f"deployment id `{shown}` is not valid: expected 32 hexadecimal digits")


def contained(root: Path, *names: str) -> Path:
    """``root / name / ...`` after checking each part is a name and the result stays in root.

    The containment check resolves symlinks, so a link planted inside ``root`` cannot lead out
    of it either.

    Raises:
        InvalidName: A part is not a name, or the path resolves outside ``root``.
    """
    for name in names:
        check_name(name)
    base = root.resolve()
    path = base.joinpath(*names)
    if not path.resolve().is_relative_to(base):
        raise InvalidName(f"`{_shown('/'.join(names))}` leads outside {base}")
    return path


def _validated(what: str, limit: int = NAME_MAX) -> Any:
    def validate(value: str) -> str:
        try:
            return check_name(value, what=what, limit=limit)
        except InvalidName as exc:
            raise ValueError(exc.message) from None

    return AfterValidator(validate)


def _documented(limit: int) -> Any:
    # The rule shown in the OpenAPI document; the check itself is the validator above, whose
    # message says what was expected in words.
    return Field(json_schema_extra={"pattern": NAME_PATTERN, "maxLength": limit})


def _validated_deployment_id(value: str) -> str:
    try:
        return check_deployment_id(value)
    except InvalidName as exc:
        raise ValueError(exc.message) from None


# Annotated types for pydantic models and FastAPI parameters: the same rule, with the message.
Name = Annotated[str, _documented(NAME_MAX), _validated("name")]
StackName = Annotated[str, _documented(NAME_MAX), _validated("stack name")]
NodeName = Annotated[str, _documented(NAME_MAX), _validated("node name")]
ServiceName = Annotated[str, _documented(NAME_MAX), _validated("service name")]
SimulationName = Annotated[
    str, _documented(SIMULATION_NAME_MAX), _validated("simulation name", SIMULATION_NAME_MAX)
]
DeploymentId = Annotated[
    str,
    Field(json_schema_extra={"pattern": DEPLOYMENT_ID_PATTERN}),
    AfterValidator(_validated_deployment_id),
]
ScheduleName = Annotated[str, _documented(NAME_MAX), _validated("schedule name")]
OrgSlug = Annotated[str, _documented(NAME_MAX), _validated("organisation")]


def _validated_record_id(value: str) -> str:
    if _DEPLOYMENT_ID_RE.fullmatch(value):
        return value
    raise ValueError(f"id `{_shown(value)}` is not valid: expected 32 hexadecimal digits")


# Ids of accounts' records (users, sessions, keys, invitations): new_id()'s 32 hex digits.
RecordId = Annotated[
    str,
    Field(json_schema_extra={"pattern": DEPLOYMENT_ID_PATTERN}),
    AfterValidator(_validated_record_id),
]
