"""Names and labels of the Docker objects a simulation makes.

Every container, network and volume carries ``io.kombify.sim.simulation=<name>``, so listing
by label finds all of them (delete, tests) and nothing else.
"""

from __future__ import annotations

PREFIX = "io.kombify.sim."
SIMULATION = PREFIX + "simulation"
GROUP = PREFIX + "group"
NODE = PREFIX + "node"
TYPE = PREFIX + "type"
SPEC = PREFIX + "spec"
ROLE = PREFIX + "role"
DESCRIPTION = PREFIX + "description"
MANAGED = PREFIX + "managed"
# Path of the simulation's private key: read back so connection info never depends on the
# KOMBIFY_HOME of whoever asks.
IDENTITY = PREFIX + "identity"
OBJECT_PREFIX = "kombisim"


def sim_filter(name: str) -> dict[str, list[str]]:
    """Docker list filter matching every object of simulation ``name``."""
    return {"label": [f"{SIMULATION}={name}"]}


def all_filter() -> dict[str, list[str]]:
    """Docker list filter matching every KombiSim object."""
    return {"label": [f"{MANAGED}=true"]}


def container_name(sim: str, node: str) -> str:
    """Container name of ``node`` in ``sim``."""
    return f"{OBJECT_PREFIX}-{sim}-{node}"


def volume_name(sim: str, node: str) -> str:
    """Name of the volume holding ``node``'s /var/lib/docker."""
    return f"{OBJECT_PREFIX}-{sim}-{node}-docker"


def state_volume_name(sim: str, node: str) -> str:
    """Name of the volume holding ``node``'s /var/lib/kombify (agent and its state)."""
    return f"{OBJECT_PREFIX}-{sim}-{node}-kombify"


def lan_network(sim: str) -> str:
    """Name of the simulation's LAN network (``local`` nodes)."""
    return f"{OBJECT_PREFIX}-{sim}-lan"


def vps_network(sim: str, node: str) -> str:
    """Name of a ``vps`` node's own network."""
    return f"{OBJECT_PREFIX}-{sim}-{node}-net"


def internet_network(sim: str) -> str:
    """Name of the network that stands in for the internet (made when ``sim`` has a vps)."""
    return f"{OBJECT_PREFIX}-{sim}-internet"


def base(sim: str) -> dict[str, str]:
    """Labels every object of ``sim`` carries."""
    return {SIMULATION: sim, MANAGED: "true"}
