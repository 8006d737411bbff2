"""The Unifier: kombination + StackKit -> plan (OpenTofu JSON + per-node manifests)."""

from __future__ import annotations

from kombify.unifier.hcl import to_hcl
from kombify.unifier.plan import SECRETS_FILE, Plan, unify, write_plan

__all__ = ["SECRETS_FILE", "Plan", "to_hcl", "unify", "write_plan"]
