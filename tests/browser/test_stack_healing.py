"""Healing seen in the dashboard: a killed container comes back by itself, and the page says so.

A stack of its own with healing on (the other stack tests turn it off, so that a killed
container stays killed while they look at it). kombify's healing hears of the kill from the
node's agent and starts the container again within a second or two, so the page may never show
it stopped; what the page must show is the incident (recovered, with what was done) and the
service running and healthy again, in a container started after the kill.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, expect
from sqlmodel import Session, select

from kombify.accounts import users
from kombify.db.engine import get_engine
from kombify.db.models import Organisation
from tests.browser.test_stack import KOMBINATION, LIVE, PASSWORD, Lab, row
from tests.support.api_process import running_api
from tests.support.browser import axe_check, screenshot
from tests.support.deploy_env import KombifyEnv

pytestmark = [pytest.mark.docker, pytest.mark.slow]

EMAIL = "member@healing.test"
# Healing on, every pass a minute apart: the kill is repaired by the agent's report, not by
# the periodic pass.
HEALING = KOMBINATION.replace(
    "healing: {{enabled: false}}", "healing: {{enabled: true, every: 1m}}"
)


@pytest.fixture(scope="module")
async def healing_lab(
    kombify: KombifyEnv, temporal_address: str, built: None
) -> AsyncIterator[Lab]:
    assert HEALING != KOMBINATION
    stack = kombify.new_stack()
    run = await kombify.deploy(HEALING.format(name=stack, greeting="one"), auto_approve=True)
    assert run["state"] == "succeeded", run
    with Session(get_engine(kombify.settings.resolved_database_url)) as db:
        org = db.exec(select(Organisation)).first()
        assert org is not None
        for email, role in (("owner@healing.test", "owner"), (EMAIL, "member")):
            users.create(db, email=email, organisation=org, role=role, password=PASSWORD)
    env = {
        "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
        "KOMBIFY_TASK_QUEUE": kombify.settings.task_queue,
    }
    with running_api(kombify.home, env=env) as api:
        yield Lab(kombify, api, stack)


async def test_a_killed_container_is_healed_and_the_page_shows_the_incident(
    page: Page, healing_lab: Lab
) -> None:
    lab = healing_lab
    await page.goto(f"{lab.api.url}/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/stacks"))
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}")
    web = row(page, "web")
    await expect(web.locator('[data-label="Health"]')).to_have_text(
        re.compile("healthy"), timeout=LIVE
    )
    killed = (await lab.env.containers(lab.stack, "box", running=True))["web"][0]
    await lab.env.on_node(lab.stack, "box", f"sudo docker kill {killed}")

    # The incidents page lists it, recovered by a restart, without a reload.
    await page.get_by_role("link", name="Incidents & drift").click()
    incidents = page.get_by_test_id("incidents-table")
    incident = incidents.locator("tbody tr").filter(has_text="box/web")
    await expect(incident.first).to_contain_text("recovered", timeout=LIVE)
    await screenshot(page, "stack-incident-healed")
    await axe_check(page)

    # And the overview shows web running and healthy again.
    await page.get_by_role("link", name="Overview").click()
    await expect(web.locator('[data-label="State"]')).to_contain_text("running", timeout=LIVE)
    await expect(web.locator('[data-label="Health"]')).to_have_text(
        re.compile(r"^\W*healthy"), timeout=LIVE
    )
    # The node agrees: web runs again.
    assert (await lab.env.containers(lab.stack, "box", running=True))["web"]
