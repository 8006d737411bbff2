"""The ``kombify`` command: one typer app, one module per command group."""

from __future__ import annotations

import typer

from kombify.cli import runtime_cmds, stacks_cmds

app = typer.Typer(
    name="kombify",
    help="Run a homelab from one file: validate, provision, deploy and heal, durably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

runtime_cmds.register(app)
stacks_cmds.register(app)


def main() -> None:
    """Console entry point: kombify errors become one line on stderr and exit code 1."""
    from kombify.cli.output import debug_enabled, fail
    from kombify.errors import KombifyError

    try:
        app()
    except KombifyError as exc:
        if debug_enabled():
            raise
        fail(exc.message)
    except Exception as exc:
        if debug_enabled():
            raise
        fail(f"unexpected {type(exc).__name__}: {exc} (run with KOMBIFY_DEBUG=1 for a traceback)")
