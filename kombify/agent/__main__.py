"""``python -m kombify.agent``: run the node agent.

Example::

    python -m kombify.agent --listen 0.0.0.0:7443 --cert agent.crt --key agent.key \\
        --ca ca.crt --state-dir /var/lib/kombify-agent
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from kombify.agent.server import AgentConfig, AgentServer
from kombify.agent.tls import CONTROL_PLANE_IDENTITY
from kombify.errors import KombifyError

log = logging.getLogger("kombify.agent")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kombify.agent", description="Run the node agent.")
    p.add_argument("--listen", required=True, help="host:port to serve gRPC on")
    p.add_argument("--cert", type=Path, required=True, help="the agent's certificate (PEM)")
    p.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    p.add_argument("--ca", type=Path, required=True, help="the kombify CA certificate (PEM)")
    p.add_argument("--state-dir", type=Path, required=True, help="where manifests are kept")
    p.add_argument("--files-root", type=Path, default=Path("/"), help="PutFile writes under it")
    p.add_argument("--container-prefix", default="kombify-", help="container name prefix")
    p.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="extra container label"
    )
    p.add_argument(
        "--allow-client",
        action="append",
        metavar="CN",
        help=f"client certificate CN allowed to call (default {CONTROL_PLANE_IDENTITY})",
    )
    return p


async def _serve(config: AgentConfig, listen: str) -> None:
    server = await AgentServer.start(config, listen)
    log.info("agent for %s listening on port %d", server.service.engine.node, server.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=5.0)


def main(argv: list[str] | None = None) -> int:
    """Runs the agent until SIGINT/SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    labels = dict(item.split("=", 1) for item in args.label if "=" in item)
    try:
        config = AgentConfig(
            cert_pem=args.cert.read_bytes(),
            key_pem=args.key.read_bytes(),
            ca_pem=args.ca.read_bytes(),
            state_dir=args.state_dir,
            files_root=args.files_root,
            container_prefix=args.container_prefix,
            extra_labels=labels,
            allowed_clients=frozenset(args.allow_client or [CONTROL_PLANE_IDENTITY]),
        )
        asyncio.run(_serve(config, args.listen))
    except OSError as exc:
        log.error("cannot read %s: %s", exc.filename, exc.strerror)
        return 1
    except KombifyError as exc:
        log.error("%s", exc.message)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
