"""TofuRunner against the real CLI: validate, plan, apply, re-plan, destroy, errors, secrets."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from kombify.errors import ConfigError
from kombify.tofu import (
    TofuApplyFailed,
    TofuConfigInvalid,
    TofuNotFound,
    TofuPlanStale,
    TofuRunner,
)
from kombify.tofu.redact import MASK
from tests.integration.tofu.conftest import BROKEN_CONFIG, GOOD_CONFIG, StackFactory


async def test_init_and_validate_a_good_config(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    lines: list[str] = []
    await runner.init(workdir, on_line=lines.append)
    assert any("successfully initialized" in line for line in lines)
    assert await runner.validate(workdir) == []


async def test_init_runs_again_only_when_the_configuration_changes(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    assert await runner.ensure_init(workdir) is True
    assert await runner.ensure_init(workdir) is False  # plan, then apply: one init
    await runner.plan(workdir)  # and what it skipped is not missed
    main = workdir / "main.tf"
    main.write_text(main.read_text() + '\noutput "extra" { value = 1 }\n')
    assert await runner.ensure_init(workdir) is True
    assert await runner.ensure_init(workdir) is False
    other_cli = TofuRunner(binary=shutil.which("true") or "/bin/true", home=workdir.parent)
    assert other_cli._init_fingerprint(workdir) != runner._init_fingerprint(workdir)


async def test_validate_a_broken_config_names_file_and_line(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)
    (workdir / "main.tf").write_text(BROKEN_CONFIG)
    with pytest.raises(TofuConfigInvalid) as info:
        await runner.validate(workdir)
    errors = info.value.errors
    assert [(e["path"], e["line"]) for e in errors] == [("main.tf", 3), ("main.tf", 7)]
    assert [d.summary for d in info.value.diagnostics] == [
        "Unsupported argument",
        "Reference to undeclared resource",
    ]
    assert info.value.diagnostics[0].column == 3
    assert "main.tf:3: Unsupported argument" in info.value.message
    assert info.value.command[1:3] == ("validate", "-json")
    assert info.value.exit_code == 1


async def test_init_on_a_broken_config_is_a_config_error(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack('resource "terraform_data" "a" {\n  input = \n}\n')
    with pytest.raises(TofuConfigInvalid) as info:
        await runner.init(workdir)
    assert info.value.diagnostics[0].line == 2
    assert info.value.command[1] == "init"
    assert info.value.stderr_tail  # the CLI's own words are kept for the log


async def test_plan_apply_replan_change_and_destroy(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)

    summary = await runner.plan(workdir)
    assert (summary.add, summary.change, summary.destroy) == (2, 0, 0)
    assert [r.address for r in summary.resources] == ["terraform_data.a", "terraform_data.b"]
    assert summary.has_changes and summary.output_changes == ["a"]
    assert runner.plan_file(workdir).exists()

    result = await runner.apply(workdir)
    assert (result.added, result.changed, result.destroyed) == (2, 0, 0)
    assert result.outputs == {"a": "alpha"}
    assert not runner.plan_file(workdir).exists()  # consumed
    assert (workdir / "terraform.tfstate").exists()

    again = await runner.plan(workdir)
    assert not again.has_changes
    assert (again.add, again.change, again.destroy, again.resources) == (0, 0, 0, [])
    assert (await runner.apply(workdir)).added == 0

    (workdir / "main.tf").write_text(
        GOOD_CONFIG.replace('"alpha"', '"ALPHA"').replace(
            'input = "beta"', 'input = "beta"\n  triggers_replace = ["v2"]'
        )
    )
    changed = await runner.plan(workdir)
    assert (changed.add, changed.change, changed.destroy) == (1, 1, 1)
    assert {r.address: r.action for r in changed.resources} == {
        "terraform_data.a": "update",
        "terraform_data.b": "replace",
    }

    await runner.destroy(workdir)
    assert not runner.plan_file(workdir).exists()
    after = await runner.plan(workdir)
    assert (after.add, after.destroy) == (2, 0)  # nothing left in state


async def test_destroy_plan_then_apply_destroys(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)
    await runner.apply(workdir)  # no saved plan: plans and applies in one go
    summary = await runner.plan(workdir, destroy=True)
    assert summary.destroy_plan and (summary.add, summary.destroy) == (0, 2)
    result = await runner.apply(workdir)
    assert result.destroyed == 2 and result.outputs == {}


async def test_a_stale_saved_plan_is_refused(runner: TofuRunner, make_stack: StackFactory) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)
    await runner.plan(workdir)
    kept = workdir / "kept.tfplan"
    shutil.copy(runner.plan_file(workdir), kept)
    await runner.apply(workdir)
    shutil.copy(kept, runner.plan_file(workdir))
    with pytest.raises(TofuPlanStale) as info:
        await runner.apply(workdir)
    assert info.value.exit_code == 1
    assert not runner.plan_file(workdir).exists()  # useless now; the next apply plans afresh


async def test_output_streams_while_the_cli_runs(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(
        """
        resource "terraform_data" "slow" {
          provisioner "local-exec" {
            command = "echo first-line; sleep 1; touch finished; echo last-line"
          }
        }
        """
    )
    await runner.init(workdir)
    seen: list[tuple[str, float, bool]] = []

    def on_line(line: str) -> None:
        seen.append((line, time.monotonic(), (workdir / "finished").exists()))

    await runner.apply(workdir, on_line=on_line)
    ended = time.monotonic()
    first = next(item for item in seen if item[0].endswith("(local-exec): first-line"))
    assert first[2] is False, "the first line arrived only after the command had finished"
    assert ended - first[1] >= 0.8
    assert any(item[0].endswith("last-line") for item in seen)


async def test_apply_failure_carries_command_exit_code_and_stderr(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(
        """
        resource "terraform_data" "ok" {}

        resource "terraform_data" "bad" {
          provisioner "local-exec" {
            command = "echo about to fail; exit 3"
          }
        }
        """
    )
    await runner.init(workdir)
    with pytest.raises(TofuApplyFailed) as info:
        await runner.apply(workdir)
    error = info.value
    assert error.command[1] == "apply" and error.exit_code == 1
    assert "local-exec provisioner error" in error.stderr_tail
    [diagnostic] = error.errors
    assert (diagnostic["path"], diagnostic["line"]) == ("main.tf", 5)
    assert "failed with exit code 1" in error.message
    assert error.retryable


async def test_secrets_are_masked_in_lines_errors_and_outputs(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    secret = "pa55-w0rd-xyz"
    extra = "extra-secret-42"
    workdir = make_stack(
        f"""
        variable "token" {{
          type      = string
          sensitive = true
        }}

        resource "terraform_data" "leaky" {{
          provisioner "local-exec" {{
            command = "echo token=${{nonsensitive(var.token)}}; echo other={extra}"
          }}
        }}

        resource "terraform_data" "failing" {{
          depends_on = [terraform_data.leaky]
          provisioner "local-exec" {{
            command = "echo ${{nonsensitive(var.token)}} >&2; exit 1"
          }}
        }}

        output "plain" {{
          value = "prefix-${{nonsensitive(var.token)}}"
        }}
        """,
        secrets__auto__tfvars__json=json.dumps({"token": secret}),
    )
    await runner.init(workdir)
    lines: list[str] = []
    with pytest.raises(TofuApplyFailed) as info:
        await runner.apply(workdir, on_line=lines.append, secrets={"x": extra})
    text = "\n".join(lines)
    assert f"token={MASK}" in text and f"other={MASK}" in text
    assert secret not in text and extra not in text
    assert secret not in str(info.value) and secret not in info.value.stderr_tail
    assert all(secret not in d.detail for d in info.value.diagnostics)

    (workdir / "main.tf").write_text((workdir / "main.tf").read_text().replace("exit 1", "exit 0"))
    result = await runner.apply(workdir, on_line=lines.append)
    assert result.outputs == {"plain": f"prefix-{MASK}"}


async def test_the_cli_runs_without_the_users_tf_environment(
    runner: TofuRunner,
    make_stack: StackFactory,
    kombify_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TF_LOG", "TRACE")
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", "/root/.terraformrc")
    monkeypatch.setenv("TF_VAR_who", "leaked")
    workdir = make_stack(
        """
        resource "terraform_data" "env" {
          provisioner "local-exec" {
            command = join(" ", [
              "echo cfg=$TF_CLI_CONFIG_FILE log=$${TF_LOG:-unset} auto=$TF_IN_AUTOMATION",
              "var=$${TF_VAR_who:-unset} cache=$TF_PLUGIN_CACHE_DIR",
            ])
          }
        }
        """
    )
    await runner.init(workdir)
    lines: list[str] = []
    await runner.apply(workdir, on_line=lines.append)
    [line] = [entry for entry in lines if "(local-exec): cfg=" in entry]
    home = kombify_home / "tofu"
    expected = f"cfg={home / 'cli.tfrc'} log=unset auto=1 var=unset cache={home / 'plugin-cache'}"
    assert expected in line
    assert (home / "cli.tfrc").read_text().startswith("#")


async def test_a_missing_binary_is_a_config_error(tmp_path: Path) -> None:
    runner = TofuRunner(binary=str(tmp_path / "no-such-tofu"))
    with pytest.raises(TofuNotFound) as info:
        await runner.init(tmp_path)
    assert isinstance(info.value, ConfigError)
    assert "no-such-tofu" in info.value.message and "install OpenTofu" in info.value.message


async def test_version(runner: TofuRunner) -> None:
    version = await runner.version()
    assert version[0].isdigit() and version.count(".") == 2


async def test_output_is_the_json_streams_messages_and_counts_come_from_it(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    workdir = make_stack(GOOD_CONFIG)
    await runner.init(workdir)
    lines: list[str] = []
    summary = await runner.plan(workdir, on_line=lines.append)
    assert (summary.add, summary.change, summary.destroy) == (2, 0, 0)
    result = await runner.apply(workdir, on_line=lines.append)
    assert (result.added, result.changed, result.destroyed) == (2, 0, 0)
    # One readable line per event (its @message), never the raw JSON.
    assert "terraform_data.a: Plan to create" in lines
    assert "Plan: 2 to add, 0 to change, 0 to destroy." in lines
    assert "Apply complete! Resources: 2 added, 0 changed, 0 destroyed." in lines
    assert not [line for line in lines if line.lstrip().startswith("{") or '"@level"' in line]


async def test_errors_come_from_diagnostic_events_masked_even_when_json_escaped(
    runner: TofuRunner, make_stack: StackFactory
) -> None:
    # The JSON stream writes <, > and & as \u003c, \u003e, \u0026: a mask applied to the raw
    # line would miss this secret; it is masked after parsing.
    secret = "s3cr<e>t&value"
    workdir = make_stack(
        """
        variable "token" {
          type      = string
          sensitive = true
        }

        resource "terraform_data" "bad" {
          provisioner "local-exec" {
            command = "echo 'got ${nonsensitive(var.token)}'; exit 3"
          }
        }
        """,
        secrets__auto__tfvars__json=json.dumps({"token": secret}),
    )
    await runner.init(workdir)
    lines: list[str] = []
    with pytest.raises(TofuApplyFailed) as info:
        await runner.apply(workdir, on_line=lines.append)
    error = info.value
    [diagnostic] = error.diagnostics
    assert diagnostic.summary == "local-exec provisioner error"
    assert (diagnostic.file, diagnostic.line, diagnostic.column) == ("main.tf", 8, 28)
    assert "exit status 3" in diagnostic.detail and MASK in diagnostic.detail
    assert "Error: local-exec provisioner error" in lines
    assert any(line.startswith("  Error running command") for line in lines)  # the detail
    assert f"got {MASK}" in "\n".join(lines)
    for text in (*lines, str(error), error.stderr_tail, diagnostic.detail):
        assert secret not in text and "s3cr" not in text, text
    assert "local-exec provisioner error" in error.stderr_tail
