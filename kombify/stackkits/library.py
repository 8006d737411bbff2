"""The StackKit library: typed views of the YAML data files shipped in this package.

Layout: ``core/core.yaml``, ``platforms/<name>.yaml``, ``kits/<name>.yaml``,
``variants/<name>.yaml`` and ``catalog.yaml`` (the service library kits ``use``). The files
are read once and checked against these models, so a broken data file fails loudly in tests.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from kombify.errors import ConfigError

# A catalog entry describes ports and health checks exactly as a user writes them.
from kombify.specs.models import Healthcheck, Port


class _Def(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Def):
    """One bootstrap step: a shell snippet with ``{{setting}}`` placeholders."""

    id: str
    script: str
    skip_on: list[str] = []
    roles: list[str] | None = None  # only on nodes with these roles; None: all


class CatalogService(_Def):
    """A service in the shared library (``catalog.yaml``)."""

    description: str
    image: str
    command: list[str] = []
    ports: list[Port] = []
    volumes: list[str] = []
    env: dict[str, str] = {}
    healthcheck: Healthcheck | None = None
    memory: str = "64Mi"


class Placement(_Def):
    """Where a kit service runs: the first node of ``role`` or, with ``global``, every one."""

    role: str | None = None
    mode: Literal["single", "global"] = "single"


class KitService(_Def):
    """A kit's catalog entry: a library service under the kit's name for it."""

    use: str
    default: bool = False
    placement: Placement = Placement()


class RoleDef(_Def):
    """A role nodes can take in a kit."""

    description: str


class Count(_Def):
    """How many of something a kit allows."""

    min: int = 0
    max: int | None = None
    odd: bool = False


class Constraints(_Def):
    """Rules validation enforces for a kit."""

    nodes: Count = Count(min=1)
    roles: dict[str, Count] = {}
    requires_local: bool = False
    requires_cloud: bool = False
    requires_vpn: bool = False


class Layer(_Def):
    """What core and platforms share: settings, bootstrap steps, services."""

    name: str
    description: str = ""
    settings: dict[str, Any] = {}
    bootstrap: list[Step] = []
    services: dict[str, KitService] = {}


class Platform(Layer):
    """Layer 2: how containers run and are orchestrated."""

    port_scope: Literal["node", "cluster"] = "node"


class Kit(_Def):
    """Layer 3: a StackKit."""

    name: str
    version: str
    description: str
    platform: str
    variants: list[str]
    default_variant: str
    roles: dict[str, RoleDef]
    default_role: str
    app_roles: list[str]
    vpn_role: str
    constraints: Constraints
    settings: dict[str, Any] = {}
    bootstrap: list[Step] = []
    services: dict[str, KitService] = {}
    # The kit service kombify loads routes into (a caddy entry, through its admin API);
    # None: services of this kit cannot be exposed by domain (docs/routes.md).
    proxy: str | None = None


class Variant(_Def):
    """Layer 4: what is OS-specific."""

    name: str
    description: str
    cloud: dict[str, dict[str, str]] = Field(default_factory=dict)
    settings: dict[str, Any] = {}


class Library(_Def):
    """Everything shipped: core, platforms, kits, variants, catalog."""

    core: Layer
    platforms: dict[str, Platform]
    kits: dict[str, Kit]
    variants: dict[str, Variant]
    catalog: dict[str, CatalogService]

    def kit(self, name: str) -> Kit:
        """The kit called ``name``; :class:`KeyError` if unknown."""
        return self.kits[name]


KIT_NAMES = ("base-homelab", "modern-homelab", "ha-homelab", "cloud-hybrid")


def _read(*parts: str) -> Any:
    path = resources.files("kombify.stackkits").joinpath(*parts)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"StackKit data file `{'/'.join(parts)}` cannot be read: {exc}") from exc


def _names(folder: str) -> list[str]:
    base = resources.files("kombify.stackkits").joinpath(folder)
    return sorted(p.name[: -len(".yaml")] for p in base.iterdir() if p.name.endswith(".yaml"))


@lru_cache(maxsize=1)
def load_library() -> Library:
    """Read and check every data file (cached for the process)."""
    return Library(
        core=Layer.model_validate(_read("core", "core.yaml")),
        platforms={
            n: Platform.model_validate(_read("platforms", f"{n}.yaml")) for n in _names("platforms")
        },
        kits={n: Kit.model_validate(_read("kits", f"{n}.yaml")) for n in _names("kits")},
        variants={
            n: Variant.model_validate(_read("variants", f"{n}.yaml")) for n in _names("variants")
        },
        catalog={
            name: CatalogService.model_validate(entry)
            for name, entry in (_read("catalog.yaml") or {}).items()
        },
    )
