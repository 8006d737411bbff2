"""Workflow and activity names are durable: running histories refer to them.

Renaming one breaks every workflow in flight, so this list changes only on purpose.
"""

from __future__ import annotations

from pathlib import Path

from temporalio import activity, workflow

from kombify.settings import Settings
from kombify.workers.registry import WORKFLOWS, build_activities

PINNED_WORKFLOWS = {
    "SelfCheck",
    "RunSimulation",
    "DeployKombination",
    "DestroyKombination",
    "RenewCertificates",
    "ObserveStack",
    "HealNode",
    "HealStack",
    "CheckDrift",
    "ObserveRoutes",
    "RunUserWorkflow",
    "ObserveVpn",
    "ReportUsage",
}
PINNED_ACTIVITIES = {
    "ProbeWorker",
    "TofuValidate",
    "TofuPlan",
    "TofuApply",
    "TofuDestroy",
    "SimEnsureImage",
    "SimCreate",
    "SimDescribe",
    "SimWaitSsh",
    "SimStop",
    "SimStart",
    "SimDelete",
    "PrepareDeployment",
    "ResolveStackNodes",
    "RecordDeployment",
    "InstallNodeAgent",
    "StageImages",
    "RolloutServices",
    "RemoveServices",
    "ListDeployedStacks",
    "RenewNodeCertificate",
    "RenewControlCertificate",
    "ObserveStack",
    "WatchNode",
    "RepairService",
    "ServiceLogTail",
    "ReviveNode",
    "StackBusy",
    "DetectDrift",
    "EnsureHealing",
    "StopHealing",
    "HealNodesNow",
    "RescheduleServices",
    "ReturnServices",
    "ApplyRoutes",
    "ObserveRoutes",
    "OpenIncident",
    "UpdateIncident",
    "OpenIncidentFor",
    "NotifyIncident",
    "CloseMendedDrift",
    "FormSwarm",
    "ApplySwarm",
    "DissolveSwarm",
    "HealSwarm",
    "MeshVpn",
    "PrepareHeadscale",
    "EnrollHeadscale",
    "UserStepRun",
    "UserStepHttp",
    "UserStepWebhook",
    "UserStepNotify",
    "UserStepStackRun",
    "UserStepRestart",
    "ObserveVpn",
    "MeasureDeployMinutes",
    "ListUsageToReport",
    "ReportOrgUsage",
}


def test_registered_workflow_names_are_pinned() -> None:
    names = set()
    for cls in WORKFLOWS:
        defn = workflow._Definition.must_from_class(cls)
        names.add(defn.name)
    assert names == PINNED_WORKFLOWS


def test_registered_activity_names_are_pinned(tmp_path: Path) -> None:
    names = set()
    for fn in build_activities(Settings(home=tmp_path)):
        defn = activity._Definition.must_from_callable(fn)
        names.add(defn.name)
    assert names == PINNED_ACTIVITIES
