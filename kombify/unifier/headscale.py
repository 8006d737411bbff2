"""Headscale for a stack (``network.vpn.provider: headscale``): its server's configuration,
its ACL policy and the enrollment plan, generated from the kombination.

Three files go into the plan (byte-identical for the same input):

* ``headscale/config.yaml``: Headscale 0.23's server configuration (the catalog's image);
* ``headscale/policy.json``: the ACL policy (a tag per node role; every tag reaches every
  other tag, so every node of the stack reaches every other node);
* ``headscale/enroll.json``: which node runs the server, its URL, the Headscale user and the
  tag of each node. Public data only: pre-auth keys are made and used at deploy time by the
  ``EnrollHeadscale`` activity and never written anywhere.

The deploy ships the first two into :data:`HOST_DIR` on the server's node, which the
catalog's ``headscale`` service bind-mounts read-only at Headscale's own config directory.
"""

from __future__ import annotations

from typing import Any

import yaml

from kombify.specs.vpn import HEADSCALE_DEFAULT_PREFIX as DEFAULT_PREFIX
from kombify.stackkits.resolver import ResolvedService, ResolvedStack
from kombify.unifier.canonical import dumps

CONFIG_FILE = "headscale/config.yaml"
POLICY_FILE = "headscale/policy.json"
ENROLL_FILE = "headscale/enroll.json"
# On the server's node (written by the deploy) and inside the container (the bind mount).
HOST_DIR = "/etc/kombify/headscale"
CONTAINER_DIR = "/etc/headscale"
LISTEN_PORT = 8080  # in the container (the catalog publishes it on the node)
STUN_PORT = 3478
DATA_DIR = "/var/lib/headscale"  # the catalog's headscale-data volume


def headscale_service(stack: ResolvedStack) -> ResolvedService | None:
    """The stack's Headscale server (the ``vpn`` service), None unless headscale runs."""
    vpn = stack.kombination.spec.network.vpn
    if not vpn.enabled or vpn.provider != "headscale":
        return None
    return next((s for s in stack.services if s.use == "headscale" and s.nodes), None)


def prefix(stack: ResolvedStack) -> str:
    """``network.vpn.subnet`` when the owner wrote it, else Headscale's own range."""
    vpn = stack.kombination.spec.network.vpn
    return vpn.subnet if "subnet" in vpn.model_fields_set else DEFAULT_PREFIX


def tag(role: str) -> str:
    """The ACL tag of a node role."""
    return f"tag:{role}"


def _host_port(service: ResolvedService, container: int, protocol: str = "tcp") -> int:
    for p in service.definition.get("ports", []):
        if p.get("container") == container and p.get("protocol", "tcp") == protocol:
            return int(p.get("host") or container)
    return container


def server_url(stack: ResolvedStack, service: ResolvedService) -> str:
    """Where every node reaches the server: its node's address, else ``headscale.<domain>``.

    Plain HTTP: Tailscale's control protocol (Noise) is encrypted end to end by itself, and
    kombify puts no TLS terminator in front of Headscale (docs/vpn.md says what that means
    for the embedded DERP relay).
    """
    node = next(n.node for n in stack.nodes if n.node.name == service.nodes[0])
    host = node.host or f"headscale.{stack.kombination.spec.domain}"
    return f"http://{host}:{_host_port(service, LISTEN_PORT)}"


def base_domain(stack: ResolvedStack) -> str:
    """MagicDNS names are ``<node>.<base_domain>``: a zone of its own under the stack's domain."""
    return f"ts.{stack.kombination.spec.domain}"


def config_document(stack: ResolvedStack, service: ResolvedService) -> dict[str, Any]:
    """Headscale 0.23's ``config.yaml`` as data (keys as its config-example.yaml names them)."""
    return {
        "server_url": server_url(stack, service),
        "listen_addr": f"0.0.0.0:{LISTEN_PORT}",
        # Metrics and the gRPC API stay inside the container: the CLI uses the unix socket.
        "metrics_listen_addr": "127.0.0.1:9090",
        "grpc_listen_addr": "127.0.0.1:50443",
        "grpc_allow_insecure": False,
        "noise": {"private_key_path": f"{DATA_DIR}/noise_private.key"},
        "prefixes": {"v4": prefix(stack), "allocation": "sequential"},
        "derp": {
            "server": {
                "enabled": True,
                "region_id": 999,
                "region_code": "kombify",
                "region_name": f"kombify {stack.kombination.metadata.name}",
                "stun_listen_addr": f"0.0.0.0:{STUN_PORT}",
                "private_key_path": f"{DATA_DIR}/derp_server_private.key",
                "automatically_add_embedded_derp_region": True,
            },
            # A homelab's VPN must not depend on Tailscale's public relays: no DERP map URLs.
            "urls": [],
            "paths": [],
            "auto_update_enabled": False,
            "update_frequency": "24h",
        },
        "disable_check_updates": True,  # no calls home from an offline homelab
        "ephemeral_node_inactivity_timeout": "30m",
        "database": {
            "type": "sqlite",
            "sqlite": {"path": f"{DATA_DIR}/db.sqlite", "write_ahead_log": True},
        },
        "log": {"format": "text", "level": "info"},
        "policy": {"mode": "file", "path": f"{CONTAINER_DIR}/policy.json"},
        "dns": {
            "magic_dns": True,
            "base_domain": base_domain(stack),
            # Nodes keep their own resolvers: MagicDNS answers only for the tailnet's names.
            "nameservers": {"global": [], "split": {}},
            "search_domains": [],
            "extra_records": [],
        },
        "unix_socket": "/var/run/headscale/headscale.sock",
        "unix_socket_permission": "0770",
        "logtail": {"enabled": False},
        "randomize_client_port": False,
    }


def user(stack: ResolvedStack) -> str:
    """The Headscale user every node of the stack is enrolled under: the stack's name."""
    return stack.kombination.metadata.name


def roles(stack: ResolvedStack) -> list[str]:
    """The node roles of the stack, sorted."""
    return sorted({n.node.role for n in stack.nodes})


def policy_document(stack: ResolvedStack) -> dict[str, Any]:
    """The ACL policy: a tag per role, owned by the stack's group; every tag reaches all."""
    tags = [tag(r) for r in roles(stack)]
    group = f"group:{user(stack)}"
    return {
        "groups": {group: [user(stack)]},
        "tagOwners": {t: [group] for t in tags},
        "acls": [{"action": "accept", "src": [t], "dst": [f"{d}:*" for d in tags]} for t in tags],
    }


def enroll_document(stack: ResolvedStack, service: ResolvedService) -> dict[str, Any]:
    """What the enrollment needs (no secret): server, user, each node's tag."""
    return {
        "service": service.name,
        "image": str(service.definition.get("image", "")),
        "node": service.nodes[0],
        "server_url": server_url(stack, service),
        "base_domain": base_domain(stack),
        "user": user(stack),
        "nodes": {n.node.name: tag(n.node.role) for n in stack.nodes},
    }


def headscale_files(stack: ResolvedStack) -> dict[str, bytes]:
    """The plan's Headscale files; none unless the stack runs Headscale."""
    service = headscale_service(stack)
    if service is None:
        return {}
    config = yaml.safe_dump(config_document(stack, service), sort_keys=False)
    return {
        CONFIG_FILE: config.encode(),
        POLICY_FILE: dumps(policy_document(stack)),
        ENROLL_FILE: dumps(enroll_document(stack, service)),
    }
