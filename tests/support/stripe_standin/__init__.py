"""A local, stateful stand-in for Stripe's API, for tests (docs/billing.md, "Stripe stand-in").

``running_stripe_standin()`` starts it as its own process on a free loopback port;
``python -m tests.support.stripe_standin --port N`` serves it by hand.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import stripe

from kombify.billing.plans import plan_by_id
from tests.support.ports import free_port
from tests.support.stripe_standin.control import StandinControl, StandinError
from tests.support.stripe_standin.webhooks import signature_header

__all__ = [
    "StandinControl",
    "StandinError",
    "StripeStandin",
    "running_stripe_standin",
    "signature_header",
]

API_KEY = "sk_test_standin_0123456789abcdef"
_REPO = Path(__file__).resolve().parents[3]


@dataclass
class StripeStandin:
    """A running stand-in: where it answers, the key it accepts, its control client."""

    base_url: str
    api_key: str
    control: StandinControl
    process: subprocess.Popen[bytes]
    log: Path

    def plan_prices(self) -> tuple[str, str]:
        """Monthly prices of the Pro and Team plans (their list prices), made at the stand-in:
        the values of KOMBIFY_STRIPE_PRICE_PRO and KOMBIFY_STRIPE_PRICE_TEAM."""
        client = self.client()
        made = [
            client.v1.prices.create(
                params={
                    "unit_amount": plan_by_id(plan).monthly_cents or 0,
                    "currency": "usd",
                    "recurring": {"interval": "month"},
                    "product_data": {"name": plan_by_id(plan).name},
                }
            ).id
            for plan in ("pro", "team")
        ]
        return made[0], made[1]

    def client(self, **options: object) -> stripe.StripeClient:
        """A real SDK client pointed at the stand-in (no network retries unless asked)."""
        options.setdefault("max_network_retries", 0)
        return stripe.StripeClient(
            self.api_key,
            base_addresses={"api": self.base_url},
            **options,  # type: ignore[arg-type]
        )


@contextmanager
def running_stripe_standin(
    *, api_key: str = API_KEY, retry_delays: tuple[float, ...] = (0.2, 1.0, 3.0)
) -> Iterator[StripeStandin]:
    """The stand-in as a subprocess on a free 127.0.0.1 port; stopped on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="stripe-standin-", suffix=".log")[1])
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "tests.support.stripe_standin", "--host", "127.0.0.1",
                "--port", str(port), "--api-key", api_key,
                "--retry-delays", ",".join(str(d) for d in retry_delays),
            ],
            cwd=_REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    control = StandinControl(base_url)
    try:
        _wait_ready(base_url, proc, log)
        yield StripeStandin(base_url, api_key, control, proc, log)
    finally:
        control.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.unlink(missing_ok=True)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the Stripe stand-in exited ({proc.returncode}): {log.read_text()[-2000:]}"
            )
        try:
            if httpx.get(url + "/_standin/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the Stripe stand-in did not answer within 30 s: {log.read_text()[-2000:]}")
