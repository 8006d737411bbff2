"""Which workflows and activities kombify's worker registers.

The names here are part of kombify's durable contract: a running workflow's history refers to
them, so ``tests/unit/test_registry.py`` pins them and renaming one must be a conscious change.
Each feature adds its workflows to ``WORKFLOWS`` and its activities in ``build_activities``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kombify.activities.selfcheck import probe_worker
from kombify.settings import Settings
from kombify.workflows.certificates import RenewCertificates
from kombify.workflows.deploy import DeployKombination, DestroyKombination
from kombify.workflows.heal import CheckDrift, HealNode, HealStack
from kombify.workflows.observe import ObserveStackWorkflow, ObserveVpnWorkflow
from kombify.workflows.routes import ObserveRoutesWorkflow
from kombify.workflows.selfcheck import SelfCheckWorkflow
from kombify.workflows.simulation import RunSimulationWorkflow
from kombify.workflows.usage import ReportUsage
from kombify.workflows.user_workflow import RunUserWorkflow

WORKFLOWS: Sequence[type] = (
    SelfCheckWorkflow,
    RunSimulationWorkflow,
    DeployKombination,
    DestroyKombination,
    RenewCertificates,
    ObserveStackWorkflow,
    HealNode,
    HealStack,
    CheckDrift,
    ObserveRoutesWorkflow,
    RunUserWorkflow,
    ObserveVpnWorkflow,
    ReportUsage,
)


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    """Every activity callable, bound to the clients it needs (built from ``settings``)."""
    # Imported here so each feature's registration stays within this function.
    from kombify.activities.agent import AgentActivities
    from kombify.activities.deploy import DeployActivities
    from kombify.activities.docker import SimActivities
    from kombify.activities.headscale import HeadscaleActivities
    from kombify.activities.heal import HealActivities
    from kombify.activities.heal_control import HealControlActivities
    from kombify.activities.heal_moves import MoveActivities
    from kombify.activities.incidents import IncidentActivities
    from kombify.activities.observe import ObserveActivities
    from kombify.activities.routes import RoutesActivities
    from kombify.activities.swarm import SwarmActivities
    from kombify.activities.swarm_heal import SwarmHealActivities
    from kombify.activities.tofu import TofuActivities, TofuRunner
    from kombify.activities.usage import UsageActivities
    from kombify.activities.user_steps import UserStepActivities
    from kombify.activities.vpn import VpnActivities
    from kombify.activities.vpn_observe import VpnObserveActivities
    from kombify.sim.client import unchecked_docker_client

    deploy = DeployActivities(settings)
    agent = AgentActivities(settings, deploy)
    tofu = TofuActivities(
        TofuRunner(binary=settings.tofu_bin, home=settings.home), log_sink=deploy.tofu_sink
    )
    sim = SimActivities(unchecked_docker_client)
    heal = HealActivities(agent, tofu)
    moves = MoveActivities(heal)
    return [
        probe_worker,
        *tofu.all(),
        *sim.all(),
        deploy.prepare,
        deploy.stack_nodes,
        deploy.record,
        deploy.deployed_stacks,
        agent.install_agent,
        agent.stage_images,
        agent.rollout,
        agent.remove_services,
        agent.renew_certificate,
        agent.renew_control_certificate,
        ObserveActivities(agent).observe,
        VpnObserveActivities(agent).observe,
        *heal.all(),
        *moves.all(),
        *HealControlActivities(heal, moves, settings.task_queue).all(),
        *IncidentActivities(settings).all(),
        *SwarmActivities(agent).all(),
        *SwarmHealActivities(heal, SwarmActivities(agent)).all(),
        *RoutesActivities(agent).all(),
        VpnActivities(agent).mesh,
        HeadscaleActivities(agent).prepare,
        HeadscaleActivities(agent).enroll,
        *UserStepActivities(settings, agent).all(),
        *UsageActivities(settings).all(),
    ]
