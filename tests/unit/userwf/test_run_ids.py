"""Run ids of one organisation never fall under another organisation's prefix."""

from kombify.contracts.user_workflow import user_workflow_id_prefix


def test_no_organisation_prefix_starts_another_ones() -> None:
    # Slugs may hold dashes: with a dash separator, `a`'s prefix took in `a-b`'s runs.
    run_of_a_b = user_workflow_id_prefix("a-b") + "nightly-1234"
    assert not run_of_a_b.startswith(user_workflow_id_prefix("a"))
    run_of_a = user_workflow_id_prefix("a") + "b-nightly-1234"
    assert not run_of_a.startswith(user_workflow_id_prefix("a-b"))
    assert run_of_a.startswith(user_workflow_id_prefix("a"))
