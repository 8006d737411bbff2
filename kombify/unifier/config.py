"""Build the OpenTofu JSON configuration (main, variables, outputs) for a resolved stack.

Every node gets a ``terraform_data`` resource that logs in over SSH, uploads its bootstrap
script and runs it. ``triggers_replace`` holds only what the bootstrap installs (a hash of the
script) and, for a cloud node, the server it runs on: a node is bootstrapped again only when
one of those changes. How kombify reaches the node (address, port, pinned host key) is
connection detail, not a trigger, so a simulated node whose published SSH port moved after a
restart is left alone. Services are not OpenTofu's business at all: their manifests go to the
node agent during the rollout.
"""

from __future__ import annotations

from typing import Any

from kombify.hostkeys import HostKey
from kombify.stackkits.resolver import ResolvedNode, ResolvedStack
from kombify.unifier.canonical import digest, ident, literal
from kombify.unifier.cloud import Config, add_cloud_node

BOOTSTRAP_PATH = "/tmp/kombify-bootstrap.sh"
REQUIRED_VERSION = ">= 1.6.0"
# The keys of ``triggers_replace`` and why a change of each re-bootstraps a node (shown in
# plans: ``node box: re-bootstrap (bootstrap script changed)``).
TRIGGER_REASONS = {
    "node": "node renamed",
    "bootstrap": "bootstrap script changed",
    "machine": "new server",
}


def bootstrap_file(node: str) -> str:
    """Plan-relative path of a node's bootstrap script."""
    return f"bootstrap/{node}.sh"


def manifest_file(node: str) -> str:
    """Plan-relative path of a node's manifest."""
    return f"manifests/{node}.json"


def build(stack: ResolvedStack) -> dict[str, dict[str, Any]]:
    """The three configuration documents: ``main``, ``variables``, ``outputs``."""
    cfg = Config(stack.kombination.metadata.name)
    outputs: dict[str, Any] = {}
    for rnode in stack.nodes:
        node = rnode.node
        triggers: dict[str, str] = {"node": node.name, "bootstrap": digest(rnode.bootstrap)}
        if node.is_cloud:
            tcp = _split_ports(rnode.settings["firewall"]["tcp_list"])
            udp = _split_ports(rnode.settings["firewall"]["udp_list"])
            host, user, machine = add_cloud_node(cfg, node, stack.variant.cloud, tcp, udp)
            port: Any = node.ssh_port
            triggers["machine"] = f"${{{machine}.id}}"  # a new server needs its bootstrap
        else:
            host, port, user = _local_target(cfg, rnode)
        connection = {"type": "ssh", "host": host, "port": port, "user": user, "timeout": "2m"}
        connection.update(_credentials(cfg, rnode))
        if node.ssh.host_key:
            # The node's pinned (or stated) key: OpenTofu refuses a node presenting another.
            # A connection setting, not a trigger: a re-trusted key replaces nothing.
            connection["host_key"] = literal(HostKey.parse(node.ssh.host_key).line)
        sudo = "" if user == "root" else "sudo -n "
        cfg.resource(
            "terraform_data",
            ident("node", node.name),
            {
                "triggers_replace": triggers,
                "connection": connection,
                "provisioner": [
                    {
                        "file": {
                            "source": f"${{path.module}}/{bootstrap_file(node.name)}",
                            "destination": BOOTSTRAP_PATH,
                        }
                    },
                    # Run, then removed: the script is not left in the node's /tmp.
                    {
                        "remote-exec": {
                            "inline": [
                                f"{sudo}sh {BOOTSTRAP_PATH}; status=$?; "
                                f"rm -f {BOOTSTRAP_PATH}; exit $status"
                            ]
                        }
                    },
                ],
            },
        )
        outputs[ident("node", node.name)] = {
            "description": f"How kombify reaches node {node.name}.",
            "value": {"host": host, "port": port, "role": node.role, "provider": node.provider},
        }
    outputs["stack"] = {
        "description": "The stack this configuration builds.",
        "value": {
            "name": cfg.stack,
            "stackkit": f"{stack.kit.name}@{stack.kit.version}",
            "variant": stack.variant.name,
            "nodes": [n.node.name for n in stack.nodes],
        },
    }
    return {
        "main": _main(cfg),
        "variables": {"variable": cfg.variables},
        "outputs": {"output": outputs},
    }


def _split_ports(words: list[str]) -> list[int]:
    return [int(w) for w in words]


def _local_target(cfg: Config, rnode: ResolvedNode) -> tuple[str, str, str]:
    node = rnode.node
    name = ident("node", node.name)
    # Host and port are variables so KombiSim (which publishes sshd on a random 127.0.0.1
    # port) and users can point the same configuration elsewhere with -var.
    default_host = node.host or "127.0.0.1"
    cfg.variables[f"{name}_host"] = {
        "type": "string",
        "default": literal(default_host),
        "description": f"SSH host of node {node.name}.",
    }
    cfg.variables[f"{name}_port"] = {
        "type": "number",
        "default": node.ssh_port,
        "description": f"SSH port of node {node.name}.",
    }
    return f"${{var.{name}_host}}", f"${{var.{name}_port}}", literal(node.ssh.user)


def _credentials(cfg: Config, rnode: ResolvedNode) -> dict[str, str]:
    node = rnode.node
    if node.ssh.identity_file:
        var = f"{ident('node', node.name)}_identity_file"
        cfg.variables[var] = {
            "type": "string",
            "default": literal(node.ssh.identity_file),
            "description": f"Private key file for node {node.name} (never copied).",
        }
        return {"private_key": f"${{file(pathexpand(var.{var}))}}"}
    cfg.variables["ssh_private_key"] = {
        "type": "string",
        "sensitive": True,
        "description": "The stack's managed SSH private key (from the 0600 secrets tfvars file).",
    }
    return {"private_key": "${var.ssh_private_key}"}


def _main(cfg: Config) -> dict[str, Any]:
    terraform: dict[str, Any] = {"required_version": REQUIRED_VERSION}
    if cfg.required:
        terraform["required_providers"] = cfg.required
    main: dict[str, Any] = {"terraform": terraform, "resource": cfg.resources}
    if cfg.providers:
        main["provider"] = cfg.providers
    if cfg.data:
        main["data"] = cfg.data
    return main
