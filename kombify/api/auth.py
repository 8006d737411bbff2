"""The local admin token, as the API uses it (see :mod:`kombify.admin_token`).

It authenticates requests only until the first owner account exists; how every request is
authenticated and authorised is :mod:`kombify.api.principal`.
"""

from __future__ import annotations

from kombify.admin_token import Unauthorized, admin_token, token_path

__all__ = ["Unauthorized", "admin_token", "token_path"]
