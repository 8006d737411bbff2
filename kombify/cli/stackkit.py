"""The ``stackkit`` command: init, prepare, validate, generate, plan and apply a kombination.

Everything here works offline on the local machine; ``plan``/``apply`` run the OpenTofu CLI
through :class:`kombify.tofu.TofuRunner` in the stack's work directory (default
``.kombify/<name>`` next to the kombination file).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from rich.table import Table

from kombify.cli.output import console, err_console, fail, print_json
from kombify.cli.validate_cmds import JsonOpt, read_spec, report
from kombify.cli.validate_cmds import validate as _validate
from kombify.errors import KombifyError
from kombify.specs import Kombination, KombinationError, load_kombination, validate_text
from kombify.stackkits.library import KIT_NAMES
from kombify.stackkits.prepare import prerequisite_checks
from kombify.unifier import Plan, unify, write_plan
from kombify.unifier.keys import ensure_managed_key

app = typer.Typer(
    name="stackkit",
    help="Turn a kombination.yaml into infrastructure: init, prepare, validate, generate, "
    "plan, apply.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)

FileArg = Annotated[Path, typer.Argument(help="The kombination file.")]
WorkdirOpt = Annotated[
    Path | None,
    typer.Option("--workdir", "-w", help="Work directory (default: .kombify/<name> next to FILE)."),
]
KEY_FILE = Path("keys") / "id_ed25519"


@contextmanager
def _user_errors() -> Iterator[None]:
    """kombify errors become one line on stderr and exit 1 (tracebacks with KOMBIFY_DEBUG)."""
    try:
        yield
    except KombinationError:
        raise
    except KombifyError as exc:
        if os.environ.get("KOMBIFY_DEBUG", "") not in ("", "0", "false"):
            raise
        fail(exc.message)


def _load(file: Path) -> Kombination:
    text = read_spec(file)
    try:
        return load_kombination(text, filename=str(file))
    except KombinationError as exc:
        report(file, exc.problems, as_json=False)
        raise  # not reached: report exits


def _workdir(file: Path, k: Kombination, workdir: Path | None) -> Path:
    return workdir if workdir is not None else file.parent / ".kombify" / k.metadata.name


# -- validate -------------------------------------------------------------------------------

app.command("validate")(_validate)


# -- init -----------------------------------------------------------------------------------

_NODE_COUNTS = {"base-homelab": 1, "modern-homelab": 2, "ha-homelab": 3, "cloud-hybrid": 2}


def scaffold(kit: str, name: str, provider: str, count: int, addresses: list[str]) -> str:
    """A kombination for ``kit`` with ``count`` nodes (text, with comments for the reader)."""
    nodes: list[dict[str, Any]] = []
    for i, (node_name, role) in enumerate(_node_plan(kit, count)):
        node_provider = "hetzner" if kit == "cloud-hybrid" and role == "edge" else provider
        node: dict[str, Any] = {"name": node_name, "provider": node_provider, "role": role}
        if node_provider == "local":
            node["address"] = addresses[i]
        nodes.append(node)
    spec: dict[str, Any] = {"stackkit": kit, "nodes": nodes, "services": {"dashboard": {}}}
    if kit == "cloud-hybrid":
        spec["network"] = {"vpn": {"enabled": True, "provider": "wireguard"}}
    document = {
        "apiVersion": "kombify.io/v1",
        "kind": "Kombination",
        "metadata": {"name": name},
        "spec": spec,
    }
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
    header = (
        f"# A {kit} homelab, scaffolded by `stackkit init`.\n"
        "# Schema: `kombify schema`; check with `stackkit validate kombination.yaml`.\n"
    )
    return header + body


def _node_plan(kit: str, count: int) -> list[tuple[str, str]]:
    if kit == "base-homelab":
        return [("main", "main")]
    if kit == "modern-homelab":
        return [("main", "main")] + [(f"worker-{i}", "worker") for i in range(1, count)]
    if kit == "ha-homelab":
        managers = 3  # the smallest Raft quorum that survives a failure; the rest work
        return [(f"manager-{i}", "manager") for i in range(1, managers + 1)] + [
            (f"worker-{i}", "worker") for i in range(1, count - managers + 1)
        ]
    return [("home", "main")] + [
        (f"edge-{i}" if count > 2 else "edge", "edge") for i in range(1, count)
    ]


@app.command()
def init(
    kit: Annotated[str | None, typer.Option(help=f"StackKit: {', '.join(KIT_NAMES)}.")] = None,
    name: Annotated[str | None, typer.Option(help="Stack name (a DNS label).")] = None,
    provider: Annotated[
        str | None, typer.Option(help="Provider of the home nodes: sim or local.")
    ] = None,
    nodes: Annotated[int | None, typer.Option(min=1, max=99, help="Number of nodes.")] = None,
    address: Annotated[
        list[str] | None, typer.Option(help="Address of each local node, in order.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")] = Path(
        "kombination.yaml"
    ),
    force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False,
) -> None:
    """Scaffold a kombination for a StackKit, from flags or by asking (when --kit is missing)."""
    if output.exists() and not force:
        fail(f"`{output}` exists; use --force to overwrite")
    if kit is None:
        kit = typer.prompt(f"StackKit ({', '.join(KIT_NAMES)})", default="base-homelab")
        name = name or typer.prompt("Stack name", default="homelab")
        provider = provider or typer.prompt("Home nodes run on (sim or local)", default="sim")
        if nodes is None and kit != "base-homelab":
            nodes = int(typer.prompt("Number of nodes", default=str(_NODE_COUNTS.get(kit, 1))))
    if kit not in KIT_NAMES:
        fail(f"unknown StackKit `{kit}` (choose {', '.join(KIT_NAMES)})", code=2)
    provider = provider or "sim"
    if provider not in ("sim", "local"):
        fail(f"`--provider {provider}`: choose sim or local", code=2)
    count = nodes or _NODE_COUNTS[kit]
    plan = _node_plan(kit, count)
    local_count = sum(1 for _, role in plan if not (kit == "cloud-hybrid" and role == "edge"))
    addresses = list(address or [])
    if provider == "local":
        while len(addresses) < local_count:
            addresses.append(
                typer.prompt(f"Address of node {plan[len(addresses)][0]} (host or host:port)")
            )
    text = scaffold(kit, name or "homelab", provider, count, addresses)
    problems = validate_text(text)
    if problems:
        report(output, problems, as_json=False)
    output.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {output} ({kit}, {len(plan)} node{'s' if len(plan) != 1 else ''})")


# -- prepare --------------------------------------------------------------------------------


@app.command()
def prepare(
    file: FileArg,
    workdir: WorkdirOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds per SSH probe.")] = 2.0,
    probe: Annotated[
        str,
        typer.Option(
            help="Which node addresses to probe over SSH: all, loopback (never leaves this "
            "machine) or none."
        ),
    ] = "all",
    as_json: JsonOpt = False,
) -> None:
    """Check prerequisites: OpenTofu CLI, SSH reachability of the nodes, readable keys."""
    if probe not in ("all", "loopback", "none"):
        fail(f"`--probe {probe}`: expected all, loopback or none", code=2)
    k = _load(file)
    managed = _workdir(file, k, workdir) / KEY_FILE
    checks = prerequisite_checks(
        k, managed_key=managed, timeout=timeout, probe=probe  # type: ignore[arg-type]
    )
    if as_json:
        print_json([c.to_dict() for c in checks])
    else:
        table = Table("check", "status", "detail", "how to fix", box=None, pad_edge=False)
        for c in checks:
            table.add_row(c.name, c.status, c.detail, c.fix)
        console.print(table)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


# -- generate / plan / apply ----------------------------------------------------------------


def _secrets(
    plan_variables: dict[str, Any], public: str | None, private: str | None
) -> dict[str, str]:
    """Values for the plan's secret tfvars: the managed key, and TF_VAR_<name> from the env.

    The OpenTofu wrapper drops TF_* variables from the CLI's environment (so a stray one cannot
    change a stack); reading them here and writing them to the 0600 tfvars file is the one
    way they reach the CLI.
    """
    values: dict[str, str] = {}
    for name, spec in sorted(plan_variables.items()):
        if name == "ssh_private_key" and private is not None:
            values[name] = private
        elif name == "ssh_public_key" and public is not None:
            values[name] = public
        elif spec.get("sensitive") and f"TF_VAR_{name}" in os.environ:
            values[name] = os.environ[f"TF_VAR_{name}"]
    return values


def _generate(
    file: Path, workdir: Path | None, fmt: Literal["json", "hcl"]
) -> tuple[Plan, Path, list[Path]]:
    k = _load(file)
    target = _workdir(file, k, workdir)
    plan = unify(k)
    variables = plan.config["variables"]["variable"]
    private = public = None
    if "ssh_private_key" in variables or "ssh_public_key" in variables:
        private, public = ensure_managed_key(target / KEY_FILE)
    secrets = _secrets(variables, public, private)
    if secrets:
        plan = unify(k, secrets_ref=secrets)
    return plan, target, write_plan(plan, target, fmt=fmt)


FormatOpt = Annotated[str, typer.Option("--format", help="json (*.tf.json) or hcl (*.tf).")]


@app.command()
def generate(
    file: FileArg, workdir: WorkdirOpt = None, fmt: FormatOpt = "json", as_json: JsonOpt = False
) -> None:
    """Write the OpenTofu configuration and node manifests into the work directory."""
    if fmt not in ("json", "hcl"):
        fail(f"`--format {fmt}`: choose json or hcl", code=2)
    with _user_errors():
        plan, target, written = _generate(file, workdir, "hcl" if fmt == "hcl" else "json")
    rel = [str(p.relative_to(target)) for p in written]
    if as_json:
        print_json({"workdir": str(target), "files": rel, "fingerprint": plan.fingerprint})
        return
    typer.echo(f"generated {len(rel)} files in {target}")
    for name in rel:
        typer.echo(f"  {name}")


def _on_line(verbose: bool) -> Callable[[str], None] | None:
    if not verbose:
        return None
    return lambda line: err_console.print(line, markup=False, highlight=False, soft_wrap=True)


async def _init_and_plan(workdir: Path, verbose: bool) -> Any:
    from kombify.tofu import TofuRunner

    runner = TofuRunner()
    with err_console.status("tofu init"):
        await runner.init(workdir, on_line=_on_line(verbose))
    with err_console.status("tofu plan"):
        return await runner.plan(workdir, on_line=_on_line(verbose))


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Stream the CLI's output.")]


def _plan_line(summary: Any) -> str:
    return f"Plan: {summary.add} to add, {summary.change} to change, {summary.destroy} to destroy."


def _summary_dict(summary: Any, nodes: list[str]) -> dict[str, Any]:
    from kombify.unifier.changes import node_changes

    return {
        "add": summary.add,
        "change": summary.change,
        "destroy": summary.destroy,
        "nodes": [c.as_dict() for c in node_changes(summary, nodes)],
        "resources": [{"address": r.address, "action": r.action} for r in summary.resources],
    }


@app.command()
def plan(
    file: FileArg, workdir: WorkdirOpt = None, verbose: VerboseOpt = False, as_json: JsonOpt = False
) -> None:
    """Generate, then ``init`` + ``plan``: print what apply would add, change and destroy."""
    from kombify.unifier.changes import plan_lines

    with _user_errors():
        generated, target, _ = _generate(file, workdir, "json")
        summary = asyncio.run(_init_and_plan(target, verbose))
    nodes = list(generated.manifests)
    if as_json:
        print_json(_summary_dict(summary, nodes))
        return
    for line in plan_lines(summary, nodes):
        typer.echo(line)
    typer.echo(_plan_line(summary))


@app.command()
def apply(
    file: FileArg,
    workdir: WorkdirOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before applying.")] = False,
    verbose: VerboseOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate, plan, then apply exactly that plan (asks first unless --yes)."""
    from kombify.tofu import TofuRunner
    from kombify.unifier.changes import plan_lines

    with _user_errors():
        generated, target, _ = _generate(file, workdir, "json")
        summary = asyncio.run(_init_and_plan(target, verbose))
        nodes = list(generated.manifests)
        if not as_json:
            for line in plan_lines(summary, nodes):
                typer.echo(line)
            typer.echo(_plan_line(summary))
        if not (yes or as_json) and not typer.confirm("Apply this plan?", default=False):
            typer.echo("not applied", err=True)
            raise typer.Exit(1)
        with err_console.status("tofu apply"):
            result = asyncio.run(TofuRunner().apply(target, on_line=_on_line(verbose)))
    if as_json:
        print_json(
            {
                "plan": _summary_dict(summary, nodes),
                "added": result.added,
                "changed": result.changed,
                "destroyed": result.destroyed,
                "outputs": result.outputs,
            }
        )
        return
    typer.echo(
        f"Applied: {result.added} added, {result.changed} changed, {result.destroyed} destroyed."
    )


def main() -> None:
    """Entry point for ``python -m kombify.cli.stackkit``."""
    app(prog_name="stackkit")


if __name__ == "__main__":
    main()
