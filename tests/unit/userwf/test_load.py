"""Workflow files: valid ones load, bad ones are refused at the right path and line."""

from __future__ import annotations

import textwrap

import pytest

from kombify.errors import SpecError
from kombify.specs.problem import Problem
from kombify.userwf.load import Group, WorkflowFile, resolve_inputs, validate_workflow_source

HEAD = """\
apiVersion: kombify.io/v1
kind: Workflow
metadata:
  name: nightly
spec:
"""


def problems(body: str) -> list[tuple[str, int | None, str]]:
    result = validate_workflow_source(HEAD + textwrap.indent(textwrap.dedent(body), "  "), "w.yaml")
    assert isinstance(result, list), "expected problems, the file was accepted"
    return [(p.path, p.line, p.message) for p in result]


def test_a_full_file_loads_with_its_groups_and_defaults() -> None:
    model = validate_workflow_source(
        HEAD
        + textwrap.indent(
            textwrap.dedent(
                """\
              inputs:
                url: {default: "http://127.0.0.1:1"}
              steps:
                - id: check
                  http: {url: "${{ inputs.url }}/health", wait: {timeout: 1m, interval: 2s}}
                  retries: {attempts: 3, backoff: 2s}
                - parallel:
                    - id: a
                      sleep: 2s
                    - id: b
                      if: steps.check.outputs.status == 200
                      webhook:
                        url: http://127.0.0.1:1/hook
                        headers: {Authorization: "Bearer ${{ secrets.HOOK_TOKEN }}"}
              on_failure:
                - id: tell
                  notify: {message: "${{ failure.step }} failed: ${{ failure.error }}"}
            """
            ),
            "  ",
        ),
        "w.yaml",
    )
    assert isinstance(model, WorkflowFile)
    check, group = model.steps
    assert not isinstance(check, Group) and isinstance(group, Group)
    assert check.retries.attempts == 3 and check.retries.backoff == 2
    assert check.timeout == 30 + 60  # the default plus the wait
    assert [s.id for s in model.all_steps()] == ["check", "a", "b", "tell"]
    assert group.steps[0].action == {"seconds": 2}
    assert resolve_inputs(model, {}) == {"url": "http://127.0.0.1:1"}
    with pytest.raises(SpecError, match="unknown input `ur`"):
        resolve_inputs(model, {"ur": "x"})


def test_schema_problems_name_path_and_line() -> None:
    found = problems(
        """\
          steps:
            - id: check
              http:
                url: ftp://x
                expect: {status: 700}
            - id: Bad
              sleep: 5x
            - id: c
              retries: 0
              notify: {message: hi, colour: red}
        """
    )
    assert found == [
        ("spec.steps[0].http.url", 9, 'expected an http:// or https:// URL, got "ftp://x"'),
        (
            "spec.steps[0].http.expect.status",
            10,
            "expected an HTTP status code (100-599), got 700",
        ),
        (
            "spec.steps[1].id",
            11,
            "expected a step id: lowercase letters, digits, '_' and '-', starting with a "
            'letter, got "Bad"',
        ),
        ("spec.steps[1].sleep", 12, 'expected a duration like 30s, 5m or 1h, got "5x"'),
        (
            "spec.steps[2].retries",
            14,
            "expected a number of attempts from 1 to 100, got 0",
        ),
        ("spec.steps[2].notify.colour", 15, 'unknown field "colour"'),
    ]


def test_references_are_checked() -> None:
    found = problems(
        """\
          steps:
            - id: check
              http: {url: "http://127.0.0.1:1"}
            - id: check
              if: steps.later.outcome == 'succeeded' || steps.chek.outcome == 'failed'
              sleep: 1s
            - id: later
              run: {stack: home, node: nas, command: "echo ${{ steps.check.outputs.code }}"}
            - parallel:
                - id: p1
                  run: {stack: home, service: web, command: ["echo", "${{ steps.p2.outcome }}"]}
                - id: p2
                  notify: {message: "${{ inputs.who }} ${{ failure.step }}"}
        """
    )
    assert found == [
        ("spec.steps[1].id", 9, 'duplicate step id "check" (first at line 7)'),
        (
            "spec.steps[1].if",
            10,
            '`steps.chek.outcome`: no step `chek` (did you mean "check"?)',
        ),
        (
            "spec.steps[1].if",
            10,
            "`steps.later.outcome`: step `later` has not run yet here (it runs later or at "
            "the same time)",
        ),
        (
            "spec.steps[2].run.command",
            13,
            "`steps.check.outputs.code`: an http step has no output `code` (outputs: status, body)",
        ),
        (
            "spec.steps[3].parallel[0].run.command[1]",
            16,
            "`steps.p2.outcome`: step `p2` has not run yet here (it runs later or at the "
            "same time)",
        ),
        (
            "spec.steps[3].parallel[1].notify.message",
            18,
            "`failure.step`: failure.* is known only in on_failure steps",
        ),
        (
            "spec.steps[3].parallel[1].notify.message",
            18,
            "`inputs.who`: no input `who` (inputs: none)",
        ),
    ]


def test_actions_and_expressions_are_checked() -> None:
    found = problems(
        """\
          steps:
            - id: two
              sleep: 1s
              notify: {message: hi}
            - id: none
              timeout: 5s
            - id: where
              run: {stack: home, node: a, service: b, command: ls}
            - id: broken
              if: "steps.two.outcome == "
              notify: {message: "${{ secrets.TOKEN }}"}
              retries: {attempts: 3, backoff: 1m, max_backoff: 30s}
        """
    )
    assert found == [
        ("spec.steps[0].notify", 9, "a step has one action; this one already has sleep"),
        (
            "spec.steps[1]",
            10,
            "a step needs one action: run, http, sleep, deploy, destroy, rollback, restart, "
            "webhook, notify",
        ),
        ("spec.steps[2].run.service", 13, "give `node` or `service`, not both"),
        (
            "spec.steps[3].if",
            15,
            "expression `steps.two.outcome ==`: the expression ends too early: expected a value",
        ),
        (
            "spec.steps[3].notify.message",
            16,
            "`secrets.TOKEN`: secrets may stand only alone in a `${{ }}` of http/webhook "
            "headers or a webhook url (they are resolved by the worker, never stored)",
        ),
        ("spec.steps[3].retries.max_backoff", 17, "must be at least the backoff (1m)"),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Problem("", 1, "the file is empty: expected a workflow (kind: Workflow)")),
        ("- a\n", Problem("", 1, "expected a mapping with apiVersion, kind, metadata, spec")),
        (
            "apiVersion: kombify.io/v1\nkind: Kombination\n"
            "metadata: {name: x}\nspec: {steps: []}\n",
            Problem("kind", 2, 'must be "Workflow", got "Kombination"'),
        ),
        (
            "a: [\n",
            Problem(
                "",
                2,
                "YAML syntax error: did not find expected node content (while parsing a flow node)",
                column=1,
            ),
        ),
    ],
)
def test_documents_that_are_no_workflow(text: str, expected: Problem) -> None:
    result = validate_workflow_source(text, "w.yaml")
    assert isinstance(result, list)
    assert result[0] == expected
