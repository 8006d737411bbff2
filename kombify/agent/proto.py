"""The generated protobuf/gRPC modules of ``proto/kombify/agent/v1/agent.proto``, typed.

Generated code lives in ``kombify/_generated`` (built by :mod:`kombify.workers.protogen`,
never committed). Importing this module builds it when it is missing or older than the
.proto source, so a fresh checkout works without a separate build step. ``pb`` is typed by
the ``.pyi`` stubs protoc writes; the gRPC glue module has no stubs, so it is reached through
the two small typed functions below instead of being imported where mypy would follow it.
"""

from __future__ import annotations

import importlib
from typing import Any

from kombify.workers import protogen

protogen.generate()

from kombify._generated.kombify.agent.v1 import agent_pb2 as pb  # noqa: E402

_GRPC_MODULE = "kombify._generated.kombify.agent.v1.agent_pb2_grpc"
SERVICE_NAME = "kombify.agent.v1.Agent"


def _grpc_module() -> Any:
    return importlib.import_module(_GRPC_MODULE)


def add_agent_servicer(servicer: object, server: Any) -> None:
    """Registers ``servicer`` (an object with one method per RPC) on a ``grpc.aio`` server."""
    _grpc_module().add_AgentServicer_to_server(servicer, server)


def agent_stub(channel: Any) -> Any:
    """The generated client stub for the Agent service on ``channel``."""
    return _grpc_module().AgentStub(channel)


__all__ = ["SERVICE_NAME", "add_agent_servicer", "agent_stub", "pb"]
