"""The local admin token, read and written without the web framework (the CLI reads it too).

The token is ``KOMBIFY_ADMIN_TOKEN`` if set, else a random one kombify writes to
``$KOMBIFY_HOME/admin-token`` (mode 0600) on first start; the CLI reads the same file, so a
user on the machine never types it. A blank token is never accepted: a blank file is replaced
by a new random token, and a blank ``KOMBIFY_ADMIN_TOKEN`` stops the API from starting.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from kombify.errors import ConfigError, KombifyError
from kombify.locks import directory_lock
from kombify.settings import Settings


class Unauthorized(KombifyError):
    """No or a wrong token."""

    code = "unauthorized"
    status = 401


def token_path(settings: Settings) -> Path:
    """Where the generated admin token lives."""
    return settings.home / "admin-token"


def _read_token(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _create_token(path: Path) -> str:
    """The token in ``path``, made (0600) unless another process made one first.

    Several API processes can share a home and start together: they take turns (a lock on
    the home) and look again, so exactly one token is made and every process serves that
    one, not one of its own that the CLI would never see. The file is replaced in one step,
    so a reader without the lock never sees it half-written.
    """
    with directory_lock(path.parent):
        token = _read_token(path)
        if token is not None:
            return token
        token = secrets.token_urlsafe(32)
        staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        os.replace(staging, path)
        return token


def admin_token(settings: Settings, *, create: bool = False) -> str | None:
    """The admin token; never blank.

    Args:
        settings: Where the token comes from.
        create: Generate a new token when there is none yet or the file is blank (the API
            does this at start); without it a missing or blank file gives ``None``.

    Raises:
        ConfigError: ``KOMBIFY_ADMIN_TOKEN`` is set but blank.
    """
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value().strip()
        if not token:
            raise ConfigError(
                "KOMBIFY_ADMIN_TOKEN is set but blank: set it to a long random string, "
                "or unset it to use the generated $KOMBIFY_HOME/admin-token"
            )
        return token
    path = token_path(settings)
    found = _read_token(path)
    if found is not None or not create:
        return found
    return _create_token(path)
