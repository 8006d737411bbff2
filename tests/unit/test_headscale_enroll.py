"""Headscale enrollment with a fake command runner: the commands as they would run on the
nodes, what is refused when a binary or the image is missing, and that a pre-auth key
reaches only the file ``tailscale up`` reads (never a command line, log, result or error).

The Headscale and Tailscale binaries cannot be fetched here, so this is where the steps run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from kombify.activities.headscale import (
    Enrollment,
    Headscale,
    HeadscaleError,
    VpnPrerequisiteError,
)
from kombify.activities.ssh import CommandResult
from kombify.unifier.headscale import CONFIG_FILE, POLICY_FILE

KEYS = {"home": "hskey-auth-HOMEsecret0001", "edge": "hskey-auth-EDGEsecret0002"}
PLAN = Enrollment(
    service="vpn",
    image="headscale/headscale:0.23.0",
    node="edge",
    server_url="http://203.0.113.7:8480",
    base_domain="ts.lab.example.net",
    user="lab",
    nodes={"home": "tag:main", "edge": "tag:edge"},
)
OK = CommandResult(0, "", "")


@dataclass
class FakeNodes:
    """Answers like nodes with Tailscale installed and Headscale running on ``edge``."""

    tailscale: set[str] = field(default_factory=lambda: {"home", "edge"})
    image: bool = True
    users: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)  # nodes already in the tailnet
    up_fails: bool = False
    calls: list[tuple[str, list[str]]] = field(default_factory=list)
    files: dict[tuple[str, str], tuple[bytes, int]] = field(default_factory=dict)
    removed: list[tuple[str, str]] = field(default_factory=list)
    _next_key: list[str] = field(default_factory=list)

    async def run(self, node: str, argv: Sequence[str]) -> CommandResult:
        argv = list(argv)
        self.calls.append((node, argv))
        if argv == ["sh", "-c", "command -v tailscale"]:
            return OK if node in self.tailscale else CommandResult(1, "", "")
        if argv[:3] == ["docker", "image", "inspect"]:
            return OK if self.image else CommandResult(1, "[]", "Error: No such image")
        if argv[:2] == ["docker", "ps"]:
            return CommandResult(0, "c0ffee\n", "")
        if argv[:2] == ["docker", "exec"]:
            return self._headscale(argv[3:])
        if argv[:2] == ["tailscale", "status"]:
            if node in self.running:
                tailnet = {"MagicDNSSuffix": PLAN.base_domain}
                return CommandResult(
                    0, json.dumps({"BackendState": "Running", "CurrentTailnet": tailnet}), ""
                )
            return CommandResult(1, "", "Logged out.")
        if argv[:2] == ["tailscale", "up"]:
            key_file = next(a for a in argv if a.startswith("--auth-key=file:"))[16:]
            key = self.files[(node, key_file)][0].decode()
            if self.up_fails:
                # Tailscale quotes what it was given when the server refuses it.
                return CommandResult(1, "", f"backend error: invalid key: {key}")
            return OK
        if argv[:2] == ["rm", "-f"]:
            self.removed.append((node, argv[2]))
            return OK
        raise AssertionError(f"unexpected command on {node}: {argv}")

    def _headscale(self, argv: list[str]) -> CommandResult:
        if argv[:3] == ["headscale", "users", "list"]:
            return CommandResult(0, json.dumps([{"id": "1", "name": u} for u in self.users]), "")
        if argv[:3] == ["headscale", "users", "create"]:
            self.users.append(argv[3])
            return CommandResult(0, "User created\n", "")
        if argv[:3] == ["headscale", "preauthkeys", "create"]:
            tag = argv[argv.index("--tags") + 1]
            node = next(n for n, t in PLAN.nodes.items() if t == tag)
            return CommandResult(
                0, json.dumps({"id": "7", "key": KEYS[node], "acl_tags": [tag]}), ""
            )
        raise AssertionError(f"unexpected headscale command: {argv}")

    async def write(self, node: str, path: str, data: bytes, mode: int) -> None:
        self.files[(node, path)] = (data, mode)


def _steps(nodes: FakeNodes) -> tuple[Headscale, list[str]]:
    lines: list[str] = []
    return Headscale(nodes, lines.append), lines


async def test_enrollment_runs_the_documented_commands_in_order() -> None:
    nodes = FakeNodes()
    steps, _ = _steps(nodes)
    result = await steps.enroll(PLAN)
    assert result.enrolled == ["edge", "home"] and result.already == []
    in_server = [argv[3:] for node, argv in nodes.calls if argv[:3] == ["docker", "exec", "c0ffee"]]
    assert all(node == "edge" for node, argv in nodes.calls if argv[:2] == ["docker", "exec"])
    assert in_server[:2] == [
        ["headscale", "users", "list", "--output", "json"],
        ["headscale", "users", "create", "lab"],
    ]
    key_args = ["--user", "lab", "--reusable=false", "--expiration", "1h"]
    assert in_server[2] == [
        "headscale", "preauthkeys", "create", *key_args, "--tags", "tag:edge", "--output", "json",
    ]  # fmt: skip
    assert in_server[3][-3:] == ["tag:main", "--output", "json"]
    ups = [(node, argv) for node, argv in nodes.calls if argv[:2] == ["tailscale", "up"]]
    assert [node for node, _ in ups] == ["edge", "home"]
    node, argv = ups[1]
    assert argv[:4] == ["tailscale", "up", "--login-server", "http://203.0.113.7:8480"]
    assert argv[-2:] == ["--hostname", "home"]


async def test_each_key_reaches_only_a_0600_file_on_its_node_which_is_removed() -> None:
    nodes = FakeNodes()
    steps, lines = _steps(nodes)
    result = await steps.enroll(PLAN)
    for (node, path), (data, mode) in nodes.files.items():
        assert data.decode() == KEYS[node] and mode == 0o600
        assert (node, path) in nodes.removed
    assert len(nodes.files) == 2
    on_command_lines = [a for _, argv in nodes.calls for a in argv if "secret" in a]
    assert on_command_lines == []
    said = "\n".join(lines) + repr(result)
    assert not any(key in said for key in KEYS.values())


async def test_a_failed_tailscale_up_names_the_node_without_its_key() -> None:
    nodes = FakeNodes(up_fails=True)
    steps, _ = _steps(nodes)
    with pytest.raises(HeadscaleError) as caught:
        await steps.enroll(PLAN)
    message = caught.value.message
    assert message.startswith(
        "edge: `tailscale up --login-server http://203.0.113.7:8480` exited 1"
    )
    assert "invalid key: <redacted>" in message
    assert not any(key in message for key in KEYS.values())
    assert nodes.removed  # the key file went, also after a failure


async def test_a_node_already_in_the_tailnet_gets_no_new_key_and_the_user_is_kept() -> None:
    nodes = FakeNodes(users=["lab"], running={"edge"})
    steps, _ = _steps(nodes)
    result = await steps.enroll(PLAN)
    assert result.enrolled == ["home"] and result.already == ["edge"]
    headscale = [argv[3:6] for _, argv in nodes.calls if argv[:2] == ["docker", "exec"]]
    assert ["headscale", "users", "create"] not in headscale
    assert headscale.count(["headscale", "preauthkeys", "create"]) == 1


@pytest.mark.parametrize(
    ("nodes", "words"),
    [
        (
            FakeNodes(tailscale={"edge"}),
            "headscale: no `tailscale` binary on home (kombify enrolls each node",
        ),
        (
            FakeNodes(tailscale=set(), image=False),
            "no `tailscale` binary on edge, home (kombify enrolls each node with `tailscale "
            "up`: install Tailscale there); the headscale image headscale/headscale:0.23.0 is "
            "not on edge",
        ),
    ],
)
async def test_prepare_refuses_naming_what_is_missing_and_writes_nothing(
    nodes: FakeNodes, words: str
) -> None:
    steps, _ = _steps(nodes)
    with pytest.raises(VpnPrerequisiteError) as caught:
        await steps.prepare(PLAN, {CONFIG_FILE: b"c", POLICY_FILE: b"p"})
    assert words in caught.value.message
    assert caught.value.permanent  # the owner installs it: no retry helps
    assert nodes.files == {}


async def test_prepare_refuses_a_swarm_kit_before_it_touches_a_node() -> None:
    # ha-homelab runs its vpn service as a Swarm task on any manager: no config would reach
    # it, so the deploy stops here, saying what to use instead.
    nodes = FakeNodes()
    steps, _ = _steps(nodes)
    with pytest.raises(VpnPrerequisiteError) as caught:
        await steps.prepare(PLAN, {CONFIG_FILE: b"c", POLICY_FILE: b"p"}, swarm=True)
    assert "use provider: wireguard" in caught.value.message
    assert nodes.files == {} and nodes.calls == []


async def test_prepare_ships_config_and_policy_to_the_bind_mounted_directory() -> None:
    nodes = FakeNodes()
    steps, lines = _steps(nodes)
    await steps.prepare(PLAN, {CONFIG_FILE: b"server_url: x\n", POLICY_FILE: b"{}"})
    assert nodes.files == {
        ("edge", "/etc/kombify/headscale/config.yaml"): (b"server_url: x\n", 0o644),
        ("edge", "/etc/kombify/headscale/policy.json"): (b"{}", 0o644),
    }
    assert lines == ["edge: headscale config and ACL policy written to /etc/kombify/headscale"]
