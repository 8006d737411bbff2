"""Cloud nodes: providers and the resources that create a server at Hetzner, AWS or Azure.

Each function adds to a ``Config`` and returns the SSH host expression and the login user for
the node's bootstrap connection. Rendered for users who have the providers; checked
structurally here (no provider can be downloaded on the build machine).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kombify.specs.models import Node
from kombify.unifier.canonical import ident

PROVIDERS: Mapping[str, dict[str, str]] = {
    "hetzner": {"name": "hcloud", "source": "hetznercloud/hcloud", "version": "~> 1.48"},
    "aws": {"name": "aws", "source": "hashicorp/aws", "version": "~> 5.60"},
    "azure": {"name": "azurerm", "source": "hashicorp/azurerm", "version": "~> 4.0"},
}
DEFAULTS: Mapping[str, tuple[str, str]] = {  # provider -> (instance type, location)
    "hetzner": ("cx22", "fsn1"),
    "aws": ("t3.small", "eu-central-1"),
    "azure": ("Standard_B2s", "westeurope"),
}
AZURE_ADMIN = "kombify"


@dataclass
class Config:
    """The pieces of a ``main.tf.json`` being assembled."""

    stack: str
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    providers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    required: dict[str, dict[str, str]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self, kind: str, name: str, body: dict[str, Any]) -> None:
        """Add ``resource "kind" "name"``; the first definition of a shared piece wins."""
        self.resources.setdefault(kind, {}).setdefault(name, body)

    def provider(self, provider: str, body: dict[str, Any]) -> None:
        """Declare a provider (once per alias) and its ``required_providers`` entry."""
        info = PROVIDERS[provider]
        self.required[info["name"]] = {"source": info["source"], "version": info["version"]}
        blocks = self.providers.setdefault(info["name"], [])
        if body not in blocks:
            blocks.append(body)


def _tags(cfg: Config, node: Node) -> dict[str, str]:
    return {"kombify-stack": cfg.stack, "kombify-node": node.name}


def add_cloud_node(
    cfg: Config,
    node: Node,
    variant_cloud: Mapping[str, Mapping[str, str]],
    tcp: list[int],
    udp: list[int],
) -> tuple[str, str, str]:
    """Add the provider resources for ``node``.

    Returns:
        The host expression, the SSH user and the address of the server resource
        (``hcloud_server.node_a``).
    """
    kind, location = (
        node.type or DEFAULTS[node.provider][0],
        node.location or DEFAULTS[node.provider][1],
    )
    cfg.variables["ssh_public_key"] = {
        "type": "string",
        "description": "Public half of the stack's SSH key, installed on cloud servers.",
    }
    if node.provider == "hetzner":
        return _hetzner(cfg, node, kind, location, variant_cloud["hetzner"], tcp, udp)
    if node.provider == "aws":
        return _aws(cfg, node, kind, location, variant_cloud["aws"], tcp, udp)
    return _azure(cfg, node, kind, location, variant_cloud["azure"], tcp, udp)


def _hetzner(
    cfg: Config,
    node: Node,
    kind: str,
    location: str,
    image: Mapping[str, str],
    tcp: list[int],
    udp: list[int],
) -> tuple[str, str, str]:
    cfg.provider("hetzner", {"token": "${var.hcloud_token}"})
    cfg.variables["hcloud_token"] = {
        "type": "string",
        "sensitive": True,
        "description": "Hetzner Cloud API token.",
    }
    cfg.resource(
        "hcloud_ssh_key",
        "kombify",
        {"name": f"{cfg.stack}-kombify", "public_key": "${var.ssh_public_key}"},
    )
    name = ident("node", node.name)
    rules = [
        {
            "direction": "in",
            "protocol": proto,
            "port": str(port),
            "source_ips": ["0.0.0.0/0", "::/0"],
        }
        for proto, ports in (("tcp", tcp), ("udp", udp))
        for port in ports
    ]
    cfg.resource("hcloud_firewall", name, {"name": f"{cfg.stack}-{node.name}", "rule": rules})
    cfg.resource(
        "hcloud_server",
        name,
        {
            "name": f"{cfg.stack}-{node.name}",
            "server_type": kind,
            "location": location,
            "image": image["image"],
            "ssh_keys": ["${hcloud_ssh_key.kombify.id}"],
            "firewall_ids": [f"${{hcloud_firewall.{name}.id}}"],
            "labels": _tags(cfg, node),
        },
    )
    return f"${{hcloud_server.{name}.ipv4_address}}", node.ssh.user, f"hcloud_server.{name}"


def _aws(
    cfg: Config,
    node: Node,
    kind: str,
    region: str,
    image: Mapping[str, str],
    tcp: list[int],
    udp: list[int],
) -> tuple[str, str, str]:
    alias = ident(region)
    provider = f"aws.{alias}"
    cfg.provider("aws", {"alias": alias, "region": region})
    net = ident("kombify", region)
    tags = {"Name": f"{cfg.stack}-{region}", "kombify-stack": cfg.stack}
    cfg.data.setdefault("aws_ami", {})[net] = {
        "provider": provider,
        "most_recent": True,
        "owners": [image["owner"]],
        "filter": [
            {"name": "name", "values": [image["name"]]},
            {"name": "architecture", "values": ["x86_64"]},
        ],
    }
    cfg.resource(
        "aws_vpc",
        net,
        {
            "provider": provider,
            "cidr_block": "10.42.0.0/16",
            "enable_dns_hostnames": True,
            "tags": tags,
        },
    )
    vpc = f"${{aws_vpc.{net}.id}}"
    cfg.resource("aws_internet_gateway", net, {"provider": provider, "vpc_id": vpc, "tags": tags})
    cfg.resource(
        "aws_subnet",
        net,
        {
            "provider": provider,
            "vpc_id": vpc,
            "cidr_block": "10.42.1.0/24",
            "map_public_ip_on_launch": True,
            "tags": tags,
        },
    )
    cfg.resource(
        "aws_route_table",
        net,
        {
            "provider": provider,
            "vpc_id": vpc,
            "route": [
                {"cidr_block": "0.0.0.0/0", "gateway_id": f"${{aws_internet_gateway.{net}.id}}"}
            ],
            "tags": tags,
        },
    )
    cfg.resource(
        "aws_route_table_association",
        net,
        {
            "provider": provider,
            "subnet_id": f"${{aws_subnet.{net}.id}}",
            "route_table_id": f"${{aws_route_table.{net}.id}}",
        },
    )
    cfg.resource(
        "aws_key_pair",
        net,
        {
            "provider": provider,
            "key_name": f"{cfg.stack}-kombify-{region}",
            "public_key": "${var.ssh_public_key}",
        },
    )
    name = ident("node", node.name)
    ingress = [
        {"from_port": port, "to_port": port, "protocol": proto, "cidr_blocks": ["0.0.0.0/0"]}
        for proto, ports in (("tcp", tcp), ("udp", udp))
        for port in ports
    ]
    cfg.resource(
        "aws_security_group",
        name,
        {
            "provider": provider,
            "name": f"{cfg.stack}-{node.name}",
            "vpc_id": vpc,
            "ingress": ingress,
            "egress": [
                {"from_port": 0, "to_port": 0, "protocol": "-1", "cidr_blocks": ["0.0.0.0/0"]}
            ],
            "tags": _tags(cfg, node),
        },
    )
    cfg.resource(
        "aws_instance",
        name,
        {
            "provider": provider,
            "ami": f"${{data.aws_ami.{net}.id}}",
            "instance_type": kind,
            "subnet_id": f"${{aws_subnet.{net}.id}}",
            "vpc_security_group_ids": [f"${{aws_security_group.{name}.id}}"],
            "key_name": f"${{aws_key_pair.{net}.key_name}}",
            "associate_public_ip_address": True,
            "tags": {"Name": f"{cfg.stack}-{node.name}", **_tags(cfg, node)},
        },
    )
    # AMIs log in as their distribution's user; an explicit ssh.user still wins.
    user = image["user"] if node.ssh.user == "root" else node.ssh.user
    return f"${{aws_instance.{name}.public_ip}}", user, f"aws_instance.{name}"


def _azure(
    cfg: Config,
    node: Node,
    size: str,
    location: str,
    image: Mapping[str, str],
    tcp: list[int],
    udp: list[int],
) -> tuple[str, str, str]:
    cfg.provider("azure", {"features": {}, "subscription_id": "${var.azure_subscription_id}"})
    cfg.variables["azure_subscription_id"] = {
        "type": "string",
        "sensitive": True,
        "description": "Azure subscription to create the servers in.",
    }
    net = ident("kombify", location)
    group = f"${{azurerm_resource_group.{net}.name}}"
    cfg.resource(
        "azurerm_resource_group", net, {"name": f"{cfg.stack}-{location}", "location": location}
    )
    cfg.resource(
        "azurerm_virtual_network",
        net,
        {
            "name": f"{cfg.stack}-vnet",
            "location": location,
            "resource_group_name": group,
            "address_space": ["10.43.0.0/16"],
        },
    )
    cfg.resource(
        "azurerm_subnet",
        net,
        {
            "name": "nodes",
            "resource_group_name": group,
            "virtual_network_name": f"${{azurerm_virtual_network.{net}.name}}",
            "address_prefixes": ["10.43.1.0/24"],
        },
    )
    name = ident("node", node.name)
    prefix = f"{cfg.stack}-{node.name}"
    user = AZURE_ADMIN if node.ssh.user == "root" else node.ssh.user
    rules = [
        {
            "name": f"allow-{proto}-{port}",
            "priority": 100 + i,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": proto.capitalize(),
            "source_port_range": "*",
            "destination_port_range": str(port),
            "source_address_prefix": "*",
            "destination_address_prefix": "*",
        }
        for i, (proto, port) in enumerate([("tcp", p) for p in tcp] + [("udp", p) for p in udp])
    ]
    cfg.resource(
        "azurerm_network_security_group",
        name,
        {
            "name": prefix,
            "location": location,
            "resource_group_name": group,
            "security_rule": rules,
        },
    )
    cfg.resource(
        "azurerm_public_ip",
        name,
        {
            "name": prefix,
            "location": location,
            "resource_group_name": group,
            "allocation_method": "Static",
            "sku": "Standard",
        },
    )
    cfg.resource(
        "azurerm_network_interface",
        name,
        {
            "name": prefix,
            "location": location,
            "resource_group_name": group,
            "ip_configuration": [
                {
                    "name": "primary",
                    "subnet_id": f"${{azurerm_subnet.{net}.id}}",
                    "private_ip_address_allocation": "Dynamic",
                    "public_ip_address_id": f"${{azurerm_public_ip.{name}.id}}",
                }
            ],
        },
    )
    cfg.resource(
        "azurerm_network_interface_security_group_association",
        name,
        {
            "network_interface_id": f"${{azurerm_network_interface.{name}.id}}",
            "network_security_group_id": f"${{azurerm_network_security_group.{name}.id}}",
        },
    )
    cfg.resource(
        "azurerm_linux_virtual_machine",
        name,
        {
            "name": prefix,
            "location": location,
            "resource_group_name": group,
            "size": size,
            "admin_username": user,
            "disable_password_authentication": True,
            "network_interface_ids": [f"${{azurerm_network_interface.{name}.id}}"],
            "admin_ssh_key": [{"username": user, "public_key": "${var.ssh_public_key}"}],
            "os_disk": [{"caching": "ReadWrite", "storage_account_type": "Standard_LRS"}],
            "source_image_reference": [dict(image)],
            "tags": _tags(cfg, node),
        },
    )
    vm = f"azurerm_linux_virtual_machine.{name}"
    return f"${{{vm}.public_ip_address}}", user, vm
