"""`stackkit init`, `generate` and `prepare` through typer's CliRunner."""

from __future__ import annotations

import asyncio
import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from typer.testing import CliRunner

from kombify.cli.stackkit import app
from kombify.hostkeys import HostKey
from kombify.specs import load_kombination, validate_text
from kombify.specs.models import Node
from kombify.stackkits.prepare import NOT_PROBED, check_node, loopback_host, probe_ssh

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def test_init_by_flags_writes_a_valid_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "init",
            "--kit",
            "modern-homelab",
            "--name",
            "fam",
            "--provider",
            "local",
            "--nodes",
            "3",
            "--address",
            "10.0.0.1",
            "--address",
            "10.0.0.2",
            "--address",
            "10.0.0.3",
        ],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "wrote kombination.yaml (modern-homelab, 3 nodes)\n"
    text = (tmp_path / "kombination.yaml").read_text()
    assert validate_text(text) == []
    k = load_kombination(text)
    assert [n.role for n in k.spec.nodes] == ["main", "worker", "worker"]
    again = CliRunner().invoke(app, ["init", "--kit", "base-homelab"], env=ENV)
    assert (
        again.exit_code == 1
        and again.stderr == "error: `kombination.yaml` exists; use --force to overwrite\n"
    )


def test_init_interactive(tmp_path: Path) -> None:
    answers = "ha-homelab\nswarm\nsim\n4\n"
    result = CliRunner().invoke(app, ["init"], input=answers, env=ENV)
    assert result.exit_code == 0, result.output
    k = load_kombination((tmp_path / "kombination.yaml").read_text())
    assert k.metadata.name == "swarm" and [n.role for n in k.spec.nodes].count("manager") == 3


def test_init_unknown_kit_is_usage_error() -> None:
    result = CliRunner().invoke(app, ["init", "--kit", "mega"], env=ENV)
    assert result.exit_code == 2


def test_generate_writes_plan_and_managed_key(tmp_path: Path) -> None:
    CliRunner().invoke(app, ["init", "--kit", "base-homelab", "--name", "solo"], env=ENV)
    result = CliRunner().invoke(app, ["generate", "kombination.yaml", "--json"], env=ENV)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    workdir = Path(out["workdir"])
    assert workdir == Path(".kombify/solo")
    assert {
        "main.tf.json",
        "variables.tf.json",
        "outputs.tf.json",
        "secrets.auto.tfvars.json",
        "bootstrap/main.sh",
        "manifests/main.json",
    } <= set(out["files"])
    for secret in (workdir / "secrets.auto.tfvars.json", workdir / "keys" / "id_ed25519"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    private = (workdir / "keys" / "id_ed25519").read_text()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert private not in (workdir / "main.tf.json").read_text()
    hcl = CliRunner().invoke(app, ["generate", "kombination.yaml", "--format", "hcl"], env=ENV)
    assert hcl.exit_code == 0 and (workdir / "main.tf").exists()
    assert not (workdir / "main.tf.json").exists()


def test_generate_reports_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("apiVersion: kombify.io/v1\nkind: Kombination\n")
    result = CliRunner().invoke(app, ["generate", "bad.yaml"], env=ENV)
    assert result.exit_code == 1
    assert (
        result.stderr.splitlines()[0] == 'bad.yaml:1: metadata: missing required field "metadata"'
    )


@pytest.fixture
def fake_sshd() -> Iterator[int]:
    """A real SSH server (asyncssh) on loopback with a host key of its own; it lets no one in."""
    loop = asyncio.new_event_loop()
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = loop.run_until_complete(
        asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[key], server_version="fake"
        )
    )
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = int(server.sockets[0].getsockname()[1])
    HOST_KEYS[port] = HostKey.parse(key.export_public_key().decode())
    yield port
    loop.call_soon_threadsafe(server.close)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=5)
    loop.close()


HOST_KEYS: dict[int, HostKey] = {}


def test_probe_scope_keeps_loopback_only_runs_on_this_machine(fake_sshd: int) -> None:
    assert loopback_host("127.0.0.5") == "127.0.0.5" and loopback_host("::1") == "::1"
    assert loopback_host("localhost") == "127.0.0.1"
    assert loopback_host("192.168.1.10") is None and loopback_host("nas.lan") is None
    ok, detail = probe_ssh("127.0.0.1", fake_sshd)
    assert ok and "SSH-2.0-fake" in detail
    # Never probed here: the address is outside this machine.
    remote = Node(name="nas", provider="local", role="main", address="192.168.1.10")
    check = check_node(remote, timeout=0.1, probe="loopback")
    assert check.status == "skipped" and check.detail.startswith(NOT_PROBED)
    assert check_node(remote, timeout=0.1, probe="none").status == "skipped"


def test_prepare_table(tmp_path: Path, fake_sshd: int) -> None:
    key = tmp_path / "id_lab"
    key.write_text("k")
    key.chmod(0o644)
    (tmp_path / "k.yaml").write_text(
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\nspec:\n"
        "  stackkit: base-homelab\n"
        f"  nodes: [{{name: nas, provider: local, address: '127.0.0.1:{fake_sshd}',"
        f" ssh: {{identityFile: {key}}}}}]\n"
    )
    result = CliRunner().invoke(
        app, ["prepare", "k.yaml", "--json", "--probe", "loopback"], env=ENV
    )
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["node nas: ssh"]["status"] == "pass"
    assert (
        rows["node nas: key"]["status"] == "fail"
        and rows["node nas: key"]["fix"] == f"chmod 600 {key}"
    )
    assert result.exit_code == 1
    key.chmod(0o600)
    table = CliRunner().invoke(app, ["prepare", "k.yaml", "--probe", "loopback"], env=ENV)
    assert "node nas: key" in table.stdout and "pass" in table.stdout


PREPARE_JSON = ["prepare", "k.yaml", "--json", "--probe", "loopback"]


def _kombination(tmp_path: Path, port: int, host_key: str | None) -> None:
    key = tmp_path / "id_lab"
    key.write_text("k")
    key.chmod(0o600)
    stated = f", hostKey: '{host_key}'" if host_key else ""
    (tmp_path / "k.yaml").write_text(
        "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\nspec:\n"
        "  stackkit: base-homelab\n"
        f"  nodes: [{{name: nas, provider: local, address: '127.0.0.1:{port}',"
        f" ssh: {{identityFile: {key}{stated}}}}}]\n"
    )


def test_prepare_shows_the_host_key_the_first_deploy_pins(tmp_path: Path, fake_sshd: int) -> None:
    _kombination(tmp_path, fake_sshd, None)
    result = CliRunner().invoke(app, PREPARE_JSON, env=ENV)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    expected = HOST_KEYS[fake_sshd]
    assert rows["node nas: ssh"]["status"] == "pass"
    assert rows["node nas: ssh"]["detail"].endswith(
        f"SSH-2.0-fake, host key {expected.fingerprint} (ssh-ed25519)"
    )


def test_prepare_holds_the_node_to_a_stated_host_key(tmp_path: Path, fake_sshd: int) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    _kombination(tmp_path, fake_sshd, other)
    result = CliRunner().invoke(app, PREPARE_JSON, env=ENV)
    row = {r["name"]: r for r in json.loads(result.stdout)}["node nas: ssh"]
    assert row["status"] == "fail" and result.exit_code == 1
    assert f"but ssh.hostKey states {HostKey.parse(other).fingerprint}" in row["detail"]

    _kombination(tmp_path, fake_sshd, HOST_KEYS[fake_sshd].line)
    result = CliRunner().invoke(app, PREPARE_JSON, env=ENV)
    row = {r["name"]: r for r in json.loads(result.stdout)}["node nas: ssh"]
    assert row["status"] == "pass" and row["detail"].endswith("as ssh.hostKey states")
