"""KombiSim basic on a real engine: one simulation at a time for a Free organisation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.sim.conftest import unique_name
from tests.support.accounts import OWNER, Installation, installation

pytestmark = pytest.mark.docker

BILLING = {"stripe_api_key": "sk_test_x", "stripe_webhook_secret": "whsec_x"}


@pytest.fixture
def inst(tmp_path: Path, node_image: str) -> Iterator[Installation]:
    del node_image  # built (or found) before the API makes nodes from it
    with installation(tmp_path, f"sqlite:///{tmp_path / 'sims.db'}", **BILLING) as made:
        yield made


def test_a_free_organisation_runs_one_simulation_at_a_time(inst: Installation) -> None:
    owner = inst.login(OWNER)
    first, second = unique_name("kt-free"), unique_name("kt-free")
    try:
        made = owner.post("/v1/simulations", json={"name": first, "nodes": 1})
        assert made.status_code == 201, made.text
        refused = owner.post("/v1/simulations", json={"name": second, "nodes": 1})
        assert refused.status_code == 402, refused.text
        body = refused.json()
        assert (body["plan"], body["entitlement"]) == ("pro", "kombisim")
        assert f"`{first}`" in body["detail"] and "1 simulation at a time" in body["detail"]
        names = [s["name"] for s in owner.get("/v1/simulations").json()["data"]]
        assert second not in names
        usage = owner.get("/v1/orgs/local/entitlements").json()["usage"]
        assert usage["simulations"] == 1
        # Making the same one again is not a second one.
        assert owner.post("/v1/simulations", json={"name": first, "nodes": 1}).status_code == 201
        assert owner.delete(f"/v1/simulations/{first}").status_code == 204
        made = owner.post("/v1/simulations", json={"name": second, "nodes": 1})
        assert made.status_code == 201, made.text
    finally:
        for name in (first, second):
            owner.delete(f"/v1/simulations/{name}")
