"""The generated protobuf/gRPC modules of ``proto/kombify/agent/v1/agent.proto``, typed.

Generated code lives in ``kombify/_generated``, built at set-up (``scripts/bootstrap.sh`` runs
:mod:`kombify.workers.protogen`), never committed and never written at import: an installed
package, a read-only tree or a node agent's bundle must not run protoc. ``pb`` is typed by
the ``.pyi`` stubs protoc writes; the gRPC glue module has no stubs, so it is reached through
small typed functions below instead of being imported where mypy would follow it. The agent
serves with grpclib (pure Python) and the control plane calls with grpcio: both speak gRPC.
"""

from __future__ import annotations

import importlib
from typing import Any

try:
    from kombify._generated.kombify.agent.v1 import agent_pb2 as pb
except ModuleNotFoundError as exc:  # a source checkout that was never set up
    raise ImportError(
        "kombify's gRPC code is not generated: run scripts/bootstrap.sh "
        "(or python -m kombify.workers.protogen)"
    ) from exc

_GRPC_MODULE = "kombify._generated.kombify.agent.v1.agent_pb2_grpc"
_GRPCLIB_MODULE = "kombify._generated.kombify.agent.v1.agent_grpc"
SERVICE_NAME = "kombify.agent.v1.Agent"


def _grpc_module() -> Any:
    return importlib.import_module(_GRPC_MODULE)


def agent_base() -> Any:
    """The generated grpclib base class of the Agent service (the agent's server side).

    Imported on demand: the control plane's client uses grpcio's stubs and never needs it.
    """
    return importlib.import_module(_GRPCLIB_MODULE).AgentBase


def agent_stub(channel: Any) -> Any:
    """The generated client stub for the Agent service on ``channel``."""
    return _grpc_module().AgentStub(channel)


def vpn_base() -> Any:
    """The generated grpclib base class of the Vpn service (the agent's WireGuard calls)."""
    return importlib.import_module(_GRPCLIB_MODULE).VpnBase


def vpn_stub(channel: Any) -> Any:
    """The generated client stub for the Vpn service on ``channel``."""
    return _grpc_module().VpnStub(channel)


__all__ = ["SERVICE_NAME", "agent_base", "agent_stub", "pb", "vpn_base", "vpn_stub"]
