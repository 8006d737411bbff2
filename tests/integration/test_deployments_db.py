"""Deployment records, node state and log lines, on SQLite and a real PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session

from kombify.activities.deploy import DeployActivities
from kombify.contracts.deploy import ListStacksInput, NodeProgress, RecordInput
from kombify.db import deployments as runs
from kombify.db import stacks as store
from kombify.db.engine import get_engine
from kombify.db.migrate import upgrade
from kombify.db.models import Stack
from kombify.settings import Settings


def test_a_run_records_outcome_nodes_and_lines(database_url: str, tmp_path: Path) -> None:
    upgrade(database_url)
    activities = DeployActivities(Settings(home=tmp_path, database_url=database_url))
    with Session(get_engine(database_url)) as session:
        org = store.ensure_local_organisation(session)
        stack = store.create_stack(
            session, organisation_id=org.id, name="lab", stackkit="base-homelab", source="x"
        )
        run = runs.create_deployment(
            session,
            stack=stack,
            revision=1,
            kind="deploy",
            workflow_id="deploy/local/lab",
            options={"simulate": True, "auto_approve": True},
        )
        run_id, stack_id, org_id = run.id, stack.id, org.id

    activities.log(run_id, "tofu", "Plan: 1 to add, 0 to change, 0 to destroy.")
    activities.log(run_id, "agent/box", "web: healthy")
    activities.record(
        RecordInput(
            deployment_id=run_id,
            state="succeeded",
            error=None,
            nodes=[
                NodeProgress(
                    "box",
                    state="rolled-out",
                    provider="sim",
                    role="main",
                    services={"web": "created"},
                    healthy={"web": True},
                    containers={"web": ["c0ffee"]},
                )
            ],
            plan={"add": 1, "change": 0, "destroy": 0},
        )
    )

    with Session(get_engine(database_url)) as session:
        stored = runs.get_deployment(session, deployment_id=run_id)
        assert stored.state == "succeeded" and stored.finished_at is not None
        assert stored.summary["options"] == {"simulate": True, "auto_approve": True}
        assert stored.summary["plan"] == {"add": 1, "change": 0, "destroy": 0}
        stack = store.get_stack(session, organisation_id=org_id, name="lab")
        (node,) = runs.stack_nodes(session, stack=stack)
        assert (node.name, node.provider, node.role, node.state) == (
            "box",
            "sim",
            "main",
            "rolled-out",
        )
        assert node.services == {
            "web": {"state": "created", "healthy": True, "containers": ["c0ffee"]}
        }
        lines = runs.deployment_events(session, deployment_id=run_id)
        assert [(e.source, e.message) for e in lines] == [
            ("tofu", "Plan: 1 to add, 0 to change, 0 to destroy."),
            ("agent/box", "web: healthy"),
        ]
        assert (
            runs.deployment_events(session, deployment_id=run_id, after=lines[0].id or 0)[0].source
            == "agent/box"
        )

    (deployed,) = activities.deployed_stacks(ListStacksInput())
    assert (deployed.stack, deployed.revision, deployed.simulate) == ("lab", 1, True)

    with Session(get_engine(database_url)) as session:
        stack = session.get(Stack, stack_id)
        assert stack is not None
        destroy = runs.create_deployment(
            session, stack=stack, revision=1, kind="destroy", workflow_id="deploy/local/lab"
        )
        destroy_id = destroy.id
    activities.record(
        RecordInput(destroy_id, "succeeded", None, nodes=[], plan=None, forget_nodes=True)
    )
    with Session(get_engine(database_url)) as session:
        stack = session.get(Stack, stack_id)
        assert stack is not None
        assert runs.stack_nodes(session, stack=stack) == []
    assert activities.deployed_stacks(ListStacksInput()) == []
