"""The node agent: a gRPC server (mutual TLS) on every node that drives its Docker engine.

The design card counts the agent among the "workers"; it lives here because it runs on the
nodes, not next to the Temporal workers. ``proto/kombify/agent/v1/agent.proto`` is the
contract; :mod:`kombify.agent.client` is how the control plane calls it; ``python -m
kombify.agent`` runs it. Certificates come from :mod:`kombify.pki`. See docs/agent.md.

Modules: ``proto`` (generated code, typed), ``manifest`` (validation, config hashes),
``engine`` (Docker), ``health`` (probes), ``converge`` (ApplyServices), ``state``
(manifests on disk), ``files`` (PutFile), ``auth`` (who may call), ``service`` (the RPCs),
``server`` (TLS and startup), ``client`` (AgentClient).
"""
