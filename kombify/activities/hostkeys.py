"""Trust on first use, recorded: read the host key a node presents and hold it to its pin.

The first contact with a node records the key it presents (``first-use``), unless the
kombination states it (``ssh.hostKey``). Every later contact must present the pinned key;
anything else is :class:`~kombify.errors.HostKeyChangedError`, raised before a single
command or file reaches the node. The pin then travels with the node's ``NodeTarget``
(``host_key``), so every asyncssh connection and OpenTofu's ``connection`` verify it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncssh
from sqlmodel import Session

from kombify.contracts.deploy import NodeTarget
from kombify.db import hostkeys as store
from kombify.errors import HostKeyChangedError, SshError
from kombify.hostkeys import HostKey, trust_command

_SCAN_TIMEOUT = 20.0
# The signature algorithms that make a server present a key of each type.
_SIGNATURES = {"ssh-rsa": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]}
_SOURCE_WORDS = {
    "first-use": "pinned on first contact",
    "stated": "stated as ssh.hostKey in the kombination",
    "trusted": "re-trusted with `kombify nodes trust`",
}


def _algorithms(prefer: str | None) -> list[str]:
    default = [alg.decode() for alg in asyncssh.public_key.get_default_public_key_algs()]
    if prefer is None:
        return default
    first = _SIGNATURES.get(prefer, [prefer])
    return first + [alg for alg in default if alg not in first]


async def read_host_key(
    host: str, port: int, *, prefer: str | None = None, timeout: float = _SCAN_TIMEOUT
) -> HostKey:
    """The host key ``host:port`` presents (asking for a ``prefer`` key first); no login.

    Raises:
        SshError: Nothing answers, or not with SSH.
    """
    try:
        async with asyncio.timeout(timeout):
            key = await asyncssh.get_server_host_key(
                host, port, server_host_key_algs=_algorithms(prefer), config=[]
            )
    except (OSError, asyncssh.Error, TimeoutError) as exc:
        raise SshError(f"cannot read the SSH host key of {host}:{port}: {exc}") from exc
    if key is None:
        raise SshError(f"{host}:{port} presented no SSH host key")
    return HostKey.parse(key.export_public_key("openssh").decode())


def known_hosts(node: NodeTarget) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[str]]:
    """asyncssh's ``known_hosts`` for ``node``: its pinned key alone.

    Raises:
        SshError: The node has no pin (nothing may connect before PrepareDeployment pinned it).
    """
    if not node.host_key:
        raise SshError(
            f"node `{node.name}` has no pinned SSH host key; run the deploy again so that "
            "its first step pins it"
        )
    return ([asyncssh.import_public_key(node.host_key)], [], [])


def changed_message(
    *, stack: str, node: str, old: HostKey, new: HostKey, source: str = "first-use"
) -> str:
    """The error text of a changed key: node, both fingerprints, what to do."""
    head = (
        f"node `{node}` presents SSH host key {new.fingerprint} ({new.algorithm}), but "
        f"{old.fingerprint} ({old.algorithm}) is {_SOURCE_WORDS.get(source, 'pinned')}; "
        "nothing on the node was touched. "
    )
    if source == "stated":
        return head + (
            "If the node's keys were changed on purpose, check the new fingerprint on the node "
            "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`) and put its public key in "
            f"spec.nodes[{node}].ssh.hostKey"
        )
    return head + (
        "If the node's keys were changed on purpose (reinstalled, re-keyed), check the new "
        "fingerprint on the node (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), then "
        f"re-trust it: `{trust_command(stack, node)}`"
    )


@dataclass(frozen=True)
class Pinned:
    """A node's pin after a contact, and whether this contact recorded it."""

    key: HostKey
    source: str
    recorded: bool


def decide(
    *,
    stack: str,
    node: str,
    presented: HostKey,
    pinned: HostKey | None,
    pinned_source: str = "first-use",
    stated: HostKey | None = None,
    same_instance: bool = True,
) -> Pinned:
    """What to trust for a node that presented ``presented``.

    Args:
        stack: The stack's name (for the message).
        node: The node's name.
        presented: The key the node presents now.
        pinned: The recorded pin, if any.
        pinned_source: How the pin was recorded.
        stated: The key the kombination states (``ssh.hostKey``); it wins over a record.
        same_instance: False when the pin belongs to an earlier simulated node of that name
            that kombify has since replaced by a new one (a new machine, pinned anew).

    Raises:
        HostKeyChangedError: The node presents a key other than the one it must.
    """
    if stated is not None:
        if presented != stated:
            raise HostKeyChangedError(
                changed_message(stack=stack, node=node, old=stated, new=presented, source="stated")
            )
        return Pinned(stated, "stated", recorded=pinned != stated or pinned_source != "stated")
    if pinned is None or not same_instance:
        return Pinned(presented, "first-use", recorded=True)
    if presented != pinned:
        raise HostKeyChangedError(
            changed_message(
                stack=stack, node=node, old=pinned, new=presented, source=pinned_source
            )
        )
    return Pinned(pinned, pinned_source, recorded=False)


def pin_targets(
    session_factory: Callable[[], Session],
    *,
    stack_id: str,
    stack: str,
    targets: Sequence[NodeTarget],
    stated: dict[str, HostKey],
    instances: dict[str, str],
    presented: dict[str, HostKey] | None = None,
) -> tuple[list[NodeTarget], list[str]]:
    """Contact every node, hold it to its pin (recording first contacts); targets with pins.

    Runs in a worker thread (PrepareDeployment's), so it drives its own event loop for the
    key reads, which go to all nodes at once.

    Args:
        session_factory: Opens a database session.
        stack_id: The stack's id.
        stack: The stack's name.
        targets: The nodes as PrepareDeployment resolved them.
        stated: Keys the kombination states, by node (real nodes only).
        instances: The container of each simulated node, by node.
        presented: Keys simulated nodes presented moments ago to the login that waited for
            them, by node: used instead of reading them again when of the pin's algorithm.

    Returns:
        The targets with ``host_key`` set, and one log line per node (fingerprint and source).

    Raises:
        HostKeyChangedError: A node presents another key; nothing was recorded for any node.
        SshError: A node's key cannot be read.
    """
    with session_factory() as session:
        pins = {
            t.name: store.get_pin(session, stack_id=stack_id, node=t.name, simulated=t.simulated)
            for t in targets
        }

    seen = {
        t.name: key
        for t in targets
        if t.simulated
        and (key := (presented or {}).get(t.name)) is not None
        and ((pin := pins[t.name]) is None or pin.algorithm == key.algorithm)
    }

    async def read_all() -> list[HostKey]:
        return list(
            await asyncio.gather(
                *(
                    read_host_key(
                        t.host, t.port, prefer=p.algorithm if (p := pins[t.name]) else None
                    )
                    for t in targets
                    if t.name not in seen
                )
            )
        )

    read = iter(asyncio.run(read_all()) if len(seen) < len(targets) else [])
    keys = [seen[t.name] if t.name in seen else next(read) for t in targets]
    decisions: list[Pinned] = []
    for target, key in zip(targets, keys, strict=True):
        pin = pins[target.name]
        instance = instances.get(target.name, "")
        decisions.append(
            decide(
                stack=stack,
                node=target.name,
                presented=key,
                pinned=store.pinned_key(pin) if pin else None,
                pinned_source=pin.source if pin else "first-use",
                stated=None if target.simulated else stated.get(target.name),
                same_instance=pin is None or not target.simulated or pin.instance == instance,
            )
        )
    lines: list[str] = []
    pinned_targets: list[NodeTarget] = []
    records = [
        store.PinRecord(
            target.name,
            target.simulated,
            decision.key,
            decision.source,
            f"{target.host}:{target.port}",
            instances.get(target.name, ""),
        )
        for target, decision in zip(targets, decisions, strict=True)
        if decision.recorded
    ]
    if records:
        with session_factory() as session:
            store.save_pins(session, stack_id=stack_id, records=records)
    for target, decision in zip(targets, decisions, strict=True):
        verb = "recorded" if decision.recorded else "verified"
        lines.append(
            f"node {target.name} at {target.host}:{target.port}: SSH host key "
            f"{decision.key.fingerprint} ({decision.key.algorithm}) {verb}, "
            f"{_SOURCE_WORDS[decision.source]}"
        )
        pinned_targets.append(dataclasses.replace(target, host_key=decision.key.line))
    return pinned_targets, lines
