"""The expression language of `if:` and `${{ }}`: parsed and evaluated, never eval'd."""

from __future__ import annotations

from typing import Any

import pytest

from kombify.userwf import expr

CONTEXT: dict[str, Any] = {
    "inputs": {"env": "prod", "count": "3"},
    "steps": {
        "check": {"outcome": "succeeded", "outputs": {"status": 200, "body": "all ok"}},
        "skipped": {"outcome": "skipped", "outputs": {}},
    },
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("steps.check.outputs.status == 200", True),
        ("steps.check.outputs.status == '200'", True),  # a numeric string compares as a number
        ("inputs.count > 20", False),
        ("inputs.count < 20", True),
        ("inputs.env == 'prod' && steps.check.outcome == 'succeeded'", True),
        ("!(inputs.env == 'prod') || contains(steps.check.outputs.body, 'ok')", True),
        ("startsWith(steps.check.outputs.body, 'all') && endsWith(inputs.env, 'od')", True),
        ("steps.skipped.outputs.status", None),  # a skipped step's output is null
        ("steps.skipped.outputs.status == null", True),
    ],
)
def test_evaluate(text: str, value: Any) -> None:
    assert expr.evaluate(expr.parse(text), CONTEXT) == value


def test_render_keeps_secrets_for_the_worker() -> None:
    text = "status ${{ steps.check.outputs.status }} in ${{inputs.env}} ${{ secrets.TOKEN }}"
    assert (
        expr.render(text, CONTEXT, keep=("secrets",)) == "status 200 in prod ${{ secrets.TOKEN }}"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the expression is empty"),
        ("a ==", "the expression ends too early: expected a value"),
        ("a == b c", "unexpected `c` after a complete expression"),
        ("exec('x')", "unknown function `exec` (known: contains, startsWith, endsWith)"),
        ("a = 1", "unexpected `= 1` at character 3"),
        ("(" * 40 + "a" + ")" * 40, "the expression is nested too deeply"),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(expr.ExpressionError) as caught:
        expr.parse(text)
    assert str(caught.value) == message
