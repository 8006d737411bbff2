"""`kombify sim` against the real engine: templates, apply, info --json, stop/start/delete."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from kombify.cli import sim_cmds
from kombify.errors import DockerError
from kombify.sim.engine import SimEngine, host_cpus, host_memory_mb, wait_gone
from kombify.sim.models import SimulationSpec, SshEndpoint
from kombify.sim.ssh import run, wait_for_ssh
from tests.integration.sim.conftest import unique_name

pytestmark = pytest.mark.docker

ENV = {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb"}
BUILTINS = ["edge-lab", "hybrid", "nas-pi", "single-node", "swarm-3", "vpn-gateway"]


@pytest.fixture
def app() -> typer.Typer:
    # Registered as the main app does it, without the other command groups.
    main = typer.Typer()
    sim_cmds.register(main)
    return main


def _sim(app: typer.Typer, *args: str) -> Result:
    return CliRunner().invoke(app, ["sim", *args], env=ENV)


def _info(app: typer.Typer, name: str) -> dict[str, Any]:
    result = _sim(app, "info", name, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _endpoint(node: dict[str, Any]) -> SshEndpoint:
    ssh = node["ssh"]
    return SshEndpoint(
        host=ssh["host"],
        port=ssh["port"],
        user=ssh["user"],
        identity_file=ssh["identityFile"],
        known_hosts_file="",
    )


def test_templates_json_lists_the_builtins(app: typer.Typer) -> None:
    result = _sim(app, "templates", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["count"] == 6
    assert [t["name"] for t in data["data"]] == BUILTINS
    assert {t["source"] for t in data["data"]} == {"builtin"}
    single = next(t for t in data["data"] if t["name"] == "single-node")
    assert single["nodes"] == [
        {"name": "server", "group": "lan", "type": "local", "role": "server"}
    ]


def test_apply_info_stop_start_delete(app: typer.Typer, engine: SimEngine) -> None:
    name = unique_name("kt-cli")
    try:
        applied = _sim(app, "apply", "single-node", "--name", name)
        assert applied.exit_code == 0, applied.output
        assert applied.stdout.splitlines()[-1] == f"connect: kombify sim ssh {name} server"

        info = _info(app, name)
        assert (info["name"], info["state"], info["groups"]) == (name, "running", ["lan"])
        [node] = info["nodes"]
        assert {k: node[k] for k in ("name", "state", "type", "group")} == {
            "name": "server", "state": "running", "type": "local", "group": "lan",
        }
        assert node["ssh"]["host"] == "127.0.0.1" and node["ssh"]["user"] == "kombify"
        assert Path(node["ssh"]["identityFile"]).parent.name == name
        # What info printed is how to get in: a real login on that port with that key.
        assert (asyncio.run(run(_endpoint(node), "hostname"))).strip() == "server"

        stopped = _sim(app, "stop", name)
        assert (stopped.exit_code, stopped.stdout) == (0, f"{name}: stopped\n")
        node = _info(app, name)["nodes"][0]
        assert (node["state"], node["ssh"]) == ("exited", None)

        started = _sim(app, "start", name)
        assert (started.exit_code, started.stdout) == (0, f"{name}: running\n")
        node = _info(app, name)["nodes"][0]  # the port may differ after a restart
        asyncio.run(wait_for_ssh(_endpoint(node), timeout=60))

        deleted = _sim(app, "delete", name)
        assert (deleted.exit_code, deleted.stdout) == (0, f"{name}: deleted\n")
        assert wait_gone(engine, name)
        again = _sim(app, "delete", name)
        assert (again.exit_code, again.stdout) == (0, f"{name}: nothing to delete\n")
        gone = _sim(app, "info", name, "--json")
        assert (gone.exit_code, gone.stdout) == (1, "")
        assert gone.stderr == f"error: simulation `{name}` does not exist\n"
    finally:
        engine.delete(name)


def test_unknown_template_is_one_line_and_exit_1(app: typer.Typer, engine: SimEngine) -> None:
    name = unique_name("kt-cli")
    result = _sim(app, "apply", "no-such-template", "--name", name)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: template `no-such-template` does not exist (known: {', '.join(BUILTINS)})\n"
    )
    assert engine.find(name) is None


def test_invalid_template_file_lists_problems_and_exits_1(
    app: typer.Typer, engine: SimEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = unique_name("kt-cli")
    (tmp_path / "lab.yaml").write_text(
        f"name: {name}\ngroups:\n  - name: home\n    nodes:\n      - name: box\n"
        "        memory: lots\n"
    )
    monkeypatch.chdir(tmp_path)
    result = _sim(app, "apply", "lab.yaml")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        "lab.yaml:6: groups[0].nodes[0].memory: expected a size: MiB as a number (at least "
        '64), or like 512m, 1g, got "lots"\n'
        "error: template is not valid: 1 problem(s)\n"
    )
    assert engine.find(name) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--cpus", "nan"], "cpus must be a number from 0.01 to {cpus} (this machine's CPUs), "
         "got nan"),
        (["--cpus", "inf"], "cpus must be a number from 0.01 to {cpus} (this machine's CPUs), "
         "got inf"),
        (["--cpus", "1000"], "cpus must be a number from 0.01 to {cpus} (this machine's CPUs), "
         "got 1000.0"),
        (["--memory", "100000g"], "memory must be from 64 MiB to {memory} MiB (this machine's "
         "memory), got 102400000 MiB"),
    ],
)
def test_create_limits_are_one_line_and_make_nothing(
    app: typer.Typer, engine: SimEngine, kombify_home: Path, options: list[str], message: str
) -> None:
    name = unique_name("kt-cli")
    result = _sim(app, "create", name, *options)
    expected = message.format(cpus=host_cpus(), memory=host_memory_mb())
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == f"error: node `node1`: {expected}\n"
    assert not any(engine.leftovers(name).values())
    assert not (kombify_home / "sims" / name).exists()


def test_binary_template_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    (tmp_path / "bin.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = _sim(app, "apply", str(tmp_path / "bin.yaml"))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"error: `{tmp_path / 'bin.yaml'}` is not UTF-8 text (byte 1): expected a template in "
        "YAML\n"
    )


def test_a_failed_create_removes_what_it_made(docker: Any, kombify_home: Path) -> None:
    # A real engine refusal after networks, volumes and keys exist: the image is missing.
    broken = SimEngine(docker, image=f"kt-missing-{unique_name()}:none")
    name = unique_name("kt-fail")
    spec = SimulationSpec.uniform(name, 2)
    with pytest.raises(DockerError, match="cannot create node"):
        broken.create(spec)
    assert broken.leftovers(name) == {"containers": [], "networks": [], "volumes": []}
    assert not (kombify_home / "sims" / name).exists()
