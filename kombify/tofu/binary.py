"""Which CLI binary kombify runs: OpenTofu preferred, Terraform accepted, the user decides."""

from __future__ import annotations

import shutil

from kombify.settings import get_settings
from kombify.tofu.errors import TofuNotFound

CANDIDATES = ("tofu", "terraform")

INSTALL_HINT = (
    "install OpenTofu (`tofu`, https://opentofu.org/docs/intro/install/) or Terraform "
    "(`terraform`), or set KOMBIFY_TOFU_BIN to the binary's path"
)


def find_tofu_binary(explicit: str | None = None) -> str:
    """The absolute path of the OpenTofu-compatible CLI to run.

    Order: ``explicit``, then ``KOMBIFY_TOFU_BIN``, then ``tofu`` on PATH, then ``terraform``.
    A binary that was asked for by name or path but is missing is an error of its own: falling
    back to another CLI than the one the user chose would be a surprise.

    Args:
        explicit: A name on PATH or a path, overriding the settings.

    Raises:
        TofuNotFound: (a :class:`kombify.errors.ConfigError`) naming what to install.
    """
    chosen = explicit or get_settings().tofu_bin
    if chosen:
        found = shutil.which(chosen)
        if found is None:
            raise TofuNotFound(
                f"OpenTofu CLI `{chosen}` not found or not executable: {INSTALL_HINT}"
            )
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return found
    raise TofuNotFound(f"neither `tofu` nor `terraform` is on PATH: {INSTALL_HINT}")
