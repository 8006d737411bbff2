"""``kombify sim``: simulated nodes (containers with SSH and Docker) to rehearse a homelab on.

These commands act on the local Docker engine directly, so they work offline and without a
running kombify server; the durable path (TTL, stop signal) is the RunSimulation workflow.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from kombify.cli.output import console, err_console, fail, print_json
from kombify.cli.params import NodeArg, SimulationNameOpt
from kombify.cli.params import SimulationArg as NameArg
from kombify.errors import KombifyError
from kombify.sim import templates as tpl
from kombify.sim.bringup import create_and_wait
from kombify.sim.client import docker_client
from kombify.sim.engine import SimEngine, validate_spec
from kombify.sim.image import ensure_httpd_image, ensure_node_image
from kombify.sim.models import SimulationInfo, SimulationSpec

sim_app = typer.Typer(
    help="Simulated homelab nodes: containers with real SSH and their own Docker engine.",
    no_args_is_help=True,
)
image_app = typer.Typer(help="The node image (built offline with debootstrap).")
sim_app.add_typer(image_app, name="image")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
WaitOpt = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until every node answers SSH.")
]


def register(app: typer.Typer) -> None:
    """Add the ``sim`` command group to ``app``."""
    app.add_typer(sim_app, name="sim")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except tpl.TemplateError as exc:
        for problem in exc.problems:
            err_console.print(str(problem), markup=False, soft_wrap=True)
        fail(f"template is not valid: {len(exc.problems)} problem(s)")
    except KombifyError as exc:
        fail(exc.message)


def _engine() -> SimEngine:
    return SimEngine(docker_client())


def _status(message: str) -> Any:
    # A spinner on a terminal; nothing on a pipe, so --json output stays one document.
    if console.is_terminal:
        return console.status(message)
    return contextlib.nullcontext()


def _create(spec: SimulationSpec, *, wait: bool, json_output: bool) -> None:
    validate_spec(spec)  # before the image build, which can take a minute on a fresh machine
    engine = _engine()
    with _status("preparing the node image (first time: about a minute)"):
        engine.ensure_image()
    if wait:
        with _status(f"creating {len(spec.nodes)} node(s) of `{spec.name}`, waiting for SSH"):
            info, _ = asyncio.run(create_and_wait(engine, spec, timeout=180))
    else:
        with _status(f"creating {len(spec.nodes)} node(s) of `{spec.name}`"):
            info = engine.create(spec)
    if json_output:
        print_json(info.to_public())
        return
    _print_info(info)
    first = info.nodes[0]
    console.print(f"\nconnect: kombify sim ssh {info.name} {first.name}", markup=False)


def _run_durably(spec: SimulationSpec, ttl: str, *, json_output: bool) -> None:
    """Hand the simulation to the RunSimulation workflow (through the API) and wait for it."""
    import time

    from kombify.cli.api_client import ApiClient, api_path
    from kombify.settings import get_settings
    from kombify.specs.quantities import parse_duration

    seconds = parse_duration(ttl)
    if not seconds:
        fail(f"`--ttl {ttl}`: expected a duration like 30m, 2h or 90s", code=2)
    client = ApiClient(get_settings())
    client.request(
        "POST",
        "/v1/simulation-runs",
        json={"source": tpl.spec_to_yaml(spec), "ttl_seconds": seconds},
    )
    run: dict[str, Any] = {}
    with _status(f"creating {len(spec.nodes)} node(s) of `{spec.name}`, waiting for SSH"):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            run = client.request("GET", api_path("v1", "simulation-runs", spec.name))
            if run["phase"] in ("ready", "deleting", "deleted"):
                break
            time.sleep(0.5)
    if run.get("phase") != "ready":
        fail(f"simulation `{spec.name}` did not become ready (phase {run.get('phase')})")
    info = _engine().info(spec.name)
    if json_output:
        print_json({**info.to_public(), "ttlSeconds": seconds})
        return
    _print_info(info)
    console.print(
        f"\nkept for {ttl}, then removed; end it sooner: kombify sim end {spec.name}",
        markup=False,
    )


def _print_info(info: SimulationInfo) -> None:
    table = Table(title=f"{info.name} ({info.state})", title_justify="left")
    for column in ("node", "group", "type", "state", "cpus", "memory", "ssh"):
        table.add_column(column)
    for node in info.nodes:
        ssh = f"{node.ssh.user}@{node.ssh.host}:{node.ssh.port}" if node.ssh else "-"
        table.add_row(
            node.name,
            node.spec.group,
            node.spec.type,
            node.state,
            f"{node.spec.cpus:g}",
            tpl.format_memory(node.spec.memory_mb),
            ssh,
        )
    console.print(table)


@image_app.command("build")
def image_build() -> None:
    """Build the node image and the test httpd image, once (a second call returns at once)."""
    with _errors():
        client = docker_client()
        with _status("building the node image"):
            node = ensure_node_image(client, progress=lambda line: console.print(line))
            httpd = ensure_httpd_image(client)
    console.print(node, markup=False)
    console.print(httpd, markup=False)


@sim_app.command("apply")
def apply(
    template: Annotated[str, typer.Argument(help="Template name or path of a YAML file.")],
    name: SimulationNameOpt = None,
    wait: WaitOpt = True,
    ttl: Annotated[
        str | None,
        typer.Option(
            "--ttl",
            help="Keep it this long (30m, 2h), then remove it: a durable run on the kombify "
            "server that survives restarts.",
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a simulation from a template (see `kombify sim templates`)."""
    with _errors():
        path = Path(template).expanduser()
        if template.endswith((".yaml", ".yml")) or path.is_file():
            spec = tpl.template_file(path).spec  # the user's own file, on their machine
        else:
            spec = tpl.get_template(template).spec
        if name:
            spec = SimulationSpec(name=name, nodes=spec.nodes, description=spec.description)
        if ttl is not None:
            _run_durably(spec, ttl, json_output=json_output)
        else:
            _create(spec, wait=wait, json_output=json_output)


@sim_app.command("end")
def end(name: NameArg) -> None:
    """End a simulation started with --ttl now; the run removes it."""
    from kombify.cli.api_client import ApiClient, api_path
    from kombify.settings import get_settings

    with _errors():
        ApiClient(get_settings()).request(
            "POST", api_path("v1", "simulation-runs", name, "stop")
        )
    console.print(f"{name}: ending (the run removes it)")


@sim_app.command("create")
def create(
    name: NameArg,
    nodes: Annotated[int, typer.Option("--nodes", min=1, max=32, help="How many nodes.")] = 1,
    cpus: Annotated[float, typer.Option("--cpus", help="CPU limit per node.")] = 1.0,
    memory: Annotated[str, typer.Option("--memory", help="Memory per node (512m, 1g).")] = "512m",
    wait: WaitOpt = True,
    json_output: JsonOpt = False,
) -> None:
    """Create a simulation of N identical nodes (node1..nodeN) on one LAN."""
    with _errors():
        try:
            memory_mb = tpl.parse_memory(int(memory) if memory.isdigit() else memory)
        except ValueError:
            fail(f"`{memory}` is not a memory size (like 512m or 1g)", code=2)
        spec = SimulationSpec.uniform(name, nodes, cpus=cpus, memory_mb=memory_mb)
        _create(spec, wait=wait, json_output=json_output)


@sim_app.command("list")
def list_(json_output: JsonOpt = False) -> None:
    """Every simulation on this Docker engine, with its state."""
    with _errors():
        sims = _engine().list_all()
    if json_output:
        print_json(
            {
                "data": [
                    {
                        "name": s.name,
                        "state": s.state,
                        "nodes": len(s.nodes),
                        "description": s.description,
                    }
                    for s in sims
                ],
                "count": len(sims),
            }
        )
        return
    if not sims:
        console.print("no simulations")
        return
    table = Table()
    for column in ("name", "state", "nodes", "description"):
        table.add_column(column)
    for s in sims:
        table.add_row(s.name, s.state, str(len(s.nodes)), s.description)
    console.print(table)


@sim_app.command("info")
def info(name: NameArg, json_output: JsonOpt = False) -> None:
    """Nodes of a simulation with their state and SSH connection (read from the engine)."""
    with _errors():
        current = _engine().info(name)
    if json_output:
        print_json(current.to_public())
    else:
        _print_info(current)


def _lifecycle(action: str, name: str) -> None:
    with _errors():
        engine = _engine()
        with _status(f"{action} `{name}`"):
            result = getattr(engine, action)(name)
    console.print(f"{name}: {result.state}", markup=False)


@sim_app.command("start")
def start(name: NameArg) -> None:
    """Start every stopped node."""
    _lifecycle("start", name)


@sim_app.command("stop")
def stop(name: NameArg) -> None:
    """Stop every node (volumes keep each node's Docker data)."""
    _lifecycle("stop", name)


@sim_app.command("restart")
def restart(name: NameArg) -> None:
    """Restart every node."""
    _lifecycle("restart", name)


@sim_app.command("delete")
def delete(name: NameArg) -> None:
    """Remove every container, network, volume and key of a simulation."""
    with _errors():
        removed = _engine().delete(name)
    console.print(f"{name}: {'deleted' if removed else 'nothing to delete'}", markup=False)


@sim_app.command("ssh", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(ctx: typer.Context, name: NameArg, node: NodeArg) -> None:
    """Open an interactive SSH session on a node (extra arguments run as a command)."""
    with _errors():
        current = _engine().info(name)
    found = current.node(node)
    if found is None:
        fail(f"node `{node}` is not in simulation `{name}`")
    if found.ssh is None:
        fail(f"node `{node}` is {found.state}: run `kombify sim start {name}`")
    binary = shutil.which("ssh")
    if binary is None:
        fail("`ssh` is not installed (apt-get install openssh-client)")
    command = found.ssh.command()
    os.execvp(binary, [command[0], *command[1:], *ctx.args])


@sim_app.command("stats")
def stats(name: NameArg, json_output: JsonOpt = False) -> None:
    """CPU, memory and network of every running node, sampled from the engine."""
    with _errors():
        sampled = _engine().stats(name)
    if json_output:
        print_json({"data": [s.to_public() for s in sampled], "count": len(sampled)})
        return
    table = Table()
    for column in ("node", "cpu %", "memory", "limit", "rx", "tx"):
        table.add_column(column)
    for s in sampled:
        table.add_row(
            s.name,
            f"{s.cpu_percent:.1f}",
            _size(s.memory_bytes),
            _size(s.memory_limit_bytes),
            _size(s.rx_bytes),
            _size(s.tx_bytes),
        )
    console.print(table)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


@sim_app.command("templates")
def templates(json_output: JsonOpt = False) -> None:
    """Built-in and user templates (user templates live in $KOMBIFY_HOME/templates)."""
    with _errors():
        found = tpl.list_templates()
    if json_output:
        print_json({"data": [t.to_public() for t in found], "count": len(found)})
        return
    table = Table()
    for column in ("name", "nodes", "source", "description"):
        table.add_column(column)
    for t in found:
        table.add_row(t.name, str(len(t.spec.nodes)), t.source, t.description)
    console.print(table)


@sim_app.command("export")
def export(
    name: NameArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default stdout).")
    ] = None,
    as_name: Annotated[
        str | None, typer.Option("--as", help="Template name (default: the simulation's).")
    ] = None,
) -> None:
    """Save a simulation as a template YAML that re-creates it."""
    with _errors():
        text = tpl.spec_to_yaml(_engine().export(name), name=as_name)
        tpl.load_text(text, file="<export>")  # what we write must load back
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}", markup=False)


@sim_app.command("watch")
def watch(name: NameArg) -> None:
    """Print node state changes as Docker reports them (Ctrl-C to stop)."""
    with _errors():
        engine = _engine()
        engine.info(name)
        with contextlib.suppress(KeyboardInterrupt):
            for event in engine.watch(name):
                console.print(f"{event.time:.3f} {event.node} {event.action}", markup=False)
