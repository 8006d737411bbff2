"""`init` that cannot reach the provider registry: one line that says so and what to do."""

from __future__ import annotations

from pathlib import Path

from kombify.tofu.models import Diagnostic
from kombify.tofu.parse import parse_human_diagnostics
from kombify.tofu.process import Completed
from kombify.tofu.runner import _message

# terraform 1.11's own words when the registry is out of reach (trimmed from a real run here).
STDERR = """
Error: Failed to query available provider packages

Could not retrieve the list of available versions for provider
hetznercloud/hcloud: could not connect to registry.terraform.io: failed to
request discovery document: dial tcp: lookup registry.terraform.io: no such host
""".strip().splitlines()


def _completed() -> Completed:
    return Completed(
        args=("/usr/local/bin/terraform", "init"),
        exit_code=1,
        stdout="",
        stdout_lines=[],
        stderr_tail=STDERR,
        events=[],
    )


def test_unreachable_registry_names_the_provider_and_what_to_do() -> None:
    diagnostics = parse_human_diagnostics(STDERR)
    message = _message(_completed(), "init", Path("/w"), diagnostics)

    assert message.startswith(
        "`terraform init` cannot download the provider(s) hetznercloud/hcloud"
    )
    assert "stackkit generate" in message and "\n" not in message


def test_other_init_errors_keep_their_own_summary() -> None:
    other = [Diagnostic(severity="error", summary="Unsupported block type", file="main.tf", line=3)]
    assert _message(_completed(), "init", Path("/w"), other).endswith(
        "main.tf:3: Unsupported block type"
    )
