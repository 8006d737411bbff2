"""What the CLI sends as ``Authorization: Bearer``, and the session tokens ``kombify login`` saves.

In this order: ``KOMBIFY_API_KEY``; else the session token saved for this API URL by
``kombify login`` (``$KOMBIFY_HOME/cli/credentials.json``, mode 0600, one entry per API URL,
so signing in to a second installation keeps the first); else the local admin token file,
which the API accepts only until the first owner exists.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from kombify.admin_token import admin_token
from kombify.errors import ConfigError
from kombify.locks import directory_lock
from kombify.settings import Settings

Source = Literal["api-key", "session", "admin-token"]


@dataclass(frozen=True)
class Credential:
    """A bearer token and where it came from (which decides what a 401 advises)."""

    token: str = field(repr=False)
    source: Source


@dataclass(frozen=True)
class SavedLogin:
    """A session ``kombify login`` saved for one API URL."""

    token: str = field(repr=False)
    email: str
    organisation: str
    expires_at: str


def credentials_path(settings: Settings) -> Path:
    """The file saved sessions live in."""
    return settings.home / "cli" / "credentials.json"


def _key(api_url: str) -> str:
    return api_url.rstrip("/")


def _read_all(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read `{path}` ({type(exc).__name__}): delete it and `kombify login` again"
        ) from None
    return data if isinstance(data, dict) else {}


def _write_all(path: Path, data: dict[str, Any]) -> None:
    # Made 0600 from the start and swapped in whole: no moment where another user could read
    # it or a reader could see half a file.
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(staging, path)


def saved_login(settings: Settings) -> SavedLogin | None:
    """The session saved for the API URL the CLI talks to, if any."""
    entry = _read_all(credentials_path(settings)).get(_key(settings.resolved_api_url))
    if not isinstance(entry, dict) or not entry.get("token"):
        return None
    return SavedLogin(
        token=str(entry["token"]),
        email=str(entry.get("email", "")),
        organisation=str(entry.get("organisation", "")),
        expires_at=str(entry.get("expires_at", "")),
    )


def save_login(settings: Settings, login: SavedLogin) -> Path:
    """Keep ``login`` for the current API URL (replacing any earlier one for it)."""
    path = credentials_path(settings)
    settings.ensure_home()
    with directory_lock(path.parent):
        data = _read_all(path)
        data[_key(settings.resolved_api_url)] = {
            "token": login.token,
            "email": login.email,
            "organisation": login.organisation,
            "expires_at": login.expires_at,
        }
        _write_all(path, data)
    return path


def forget_login(settings: Settings) -> bool:
    """Drop the session saved for the current API URL; whether there was one."""
    path = credentials_path(settings)
    if not path.exists():
        return False
    with directory_lock(path.parent):
        data = _read_all(path)
        found = data.pop(_key(settings.resolved_api_url), None) is not None
        if found:
            _write_all(path, data)
    return found


def resolve(settings: Settings) -> Credential | None:
    """The credential to send: API key, else saved session, else admin token (or none).

    Raises:
        ConfigError: ``KOMBIFY_API_KEY`` is set but blank.
    """
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value().strip()
        if not key:
            raise ConfigError("KOMBIFY_API_KEY is set but blank: set it to a key, or unset it")
        return Credential(token=key, source="api-key")
    saved = saved_login(settings)
    if saved is not None:
        return Credential(token=saved.token, source="session")
    token = admin_token(settings)
    return Credential(token=token, source="admin-token") if token else None
