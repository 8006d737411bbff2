"""The stack pages in Chromium against a real deploy on KombiSim: the live status table
turning a killed container unhealthy, the diagram's nodes and services, and a run's output
arriving live over SSE while its plan is approved in the page.

One module-scoped stack (one simulated node; `web` with a health check, `notes` with two
replicas) deployed through a real worker; `kombify api` serves the built dashboard on the
same database and task queue, and a member signs in with a password like anyone would.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from playwright.async_api import Locator, Page, expect
from sqlmodel import Session, select

from kombify.accounts import users
from kombify.db.engine import get_engine
from kombify.db.models import Organisation
from tests.support.api_process import ApiProcess, running_api
from tests.support.browser import REPO, as_phone, axe_check, screenshot
from tests.support.deploy_env import KombifyEnv

pytestmark = [pytest.mark.docker, pytest.mark.slow]

BUILD = REPO / "dashboard" / "build" / "index.html"
EMAIL = "member@stack.test"
PASSWORD = "a long enough passphrase"  # noqa: S105 - the test's own
LIVE = 60_000  # ms: the page asks every 5 s; a deploy step takes seconds

KOMBINATION = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: {name}}}
spec:
  stackkit: base-homelab
  healing: {{enabled: false}}
  nodes:
    - {{name: box, provider: sim, resources: {{cpus: 1, memory: 512Mi}}}}
  services:
    reverse-proxy: {{enabled: false}}
    web:
      image: kombify-test/httpd:1
      command: ["sh", "-c", "echo {greeting} > /www/index.html && exec httpd -f -p 80 -h /www"]
      ports: [{{container: 80}}]
      healthcheck: {{http: "http://localhost:80/", interval: 1s}}
    notes:
      image: kombify-test/httpd:1
      replicas: 2
      ports: [{{container: 80}}]
"""


@dataclass
class Lab:
    env: KombifyEnv
    api: ApiProcess
    stack: str


@pytest.fixture(scope="module")
async def lab(kombify: KombifyEnv, temporal_address: str, built: None) -> AsyncIterator[Lab]:
    stack = kombify.new_stack()
    run = await kombify.deploy(KOMBINATION.format(name=stack, greeting="one"), auto_approve=True)
    assert run["state"] == "succeeded", run
    with Session(get_engine(kombify.settings.resolved_database_url)) as db:
        org = db.exec(select(Organisation)).first()  # the installation's one organisation
        assert org is not None
        # Set up as an installation is: a first owner (so the dashboard does not offer the
        # setup wizard), who invited the member these tests sign in as.
        for email, role in (("owner@stack.test", "owner"), (EMAIL, "member")):
            users.create(db, email=email, organisation=org, role=role, password=PASSWORD)
    env = {
        "KOMBIFY_TEMPORAL_ADDRESS": temporal_address,
        "KOMBIFY_TASK_QUEUE": kombify.settings.task_queue,
    }
    with running_api(kombify.home, env=env) as api:
        yield Lab(kombify, api, stack)


async def sign_in(page: Page, lab: Lab) -> None:
    await page.goto(f"{lab.api.url}/login")
    await page.get_by_label("Email").fill(EMAIL)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/stacks"))


def row(page: Page, service: str) -> Locator:
    return page.get_by_test_id("status-table").locator(f'tr[data-service="{service}"]')


async def test_the_diagram_draws_the_nodes_and_services(page: Page, lab: Lab) -> None:
    await sign_in(page, lab)
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}")

    diagram = page.get_by_test_id("stack-diagram")
    node = diagram.locator('[data-element="node:box"]')
    await expect(node).to_have_attribute("data-state", "running", timeout=LIVE)
    await expect(node).to_contain_text("box (main, sim)")
    for service in ("web", "notes"):
        box = diagram.locator(f'[data-element="service:{service}"]')
        await expect(box).to_contain_text(service)
    # States are written out, not only coloured; replicas are drawn.
    web = diagram.locator('[data-element="service:web"]')
    await expect(web).to_have_attribute("data-state", "healthy", timeout=LIVE)
    await expect(web).to_contain_text("healthy")
    await expect(diagram.locator('[data-element="service:notes"]')).to_contain_text("×2")
    placement = diagram.locator('[data-edge="placement:service:notes->node:box"]')
    await expect(placement).to_contain_text("2/2")
    # Keyboard: a box takes focus and tells why it is in its state.
    await web.focus()
    await page.keyboard.press("Enter")
    await expect(diagram).to_contain_text("Service web: healthy")
    await screenshot(page, "stack-overview")
    await axe_check(page)
    await as_phone(page)
    await axe_check(page)


async def test_the_stacks_list_shows_health_asked_from_the_nodes(page: Page, lab: Lab) -> None:
    await sign_in(page, lab)
    stack_row = page.locator("tbody tr").filter(has=page.get_by_role("rowheader", name=lab.stack))
    await expect(stack_row.locator("td.health")).to_contain_text("healthy (", timeout=LIVE)
    await expect(stack_row).to_contain_text("deploy succeeded")


async def test_the_status_table_turns_a_killed_container_unhealthy(page: Page, lab: Lab) -> None:
    await sign_in(page, lab)
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}")
    web = row(page, "web")
    await expect(web.locator('[data-label="Health"]')).to_have_text(
        re.compile("healthy"), timeout=LIVE
    )
    await expect(web.locator('[data-label="State"]')).to_contain_text("running")

    running = await lab.env.containers(lab.stack, "box", running=True)
    await lab.env.on_node(lab.stack, "box", f"sudo docker kill {running['web'][0]}")

    # The page asks again by itself (every 5 s): no reload.
    state = web.locator('[data-label="State"]')
    await expect(state).to_have_text(re.compile(r"^\W*exited\b"), timeout=LIVE)
    await expect(state).to_contain_text("0/1 running")
    health = await web.locator('[data-label="Health"]').inner_text()
    assert re.fullmatch(r"\W*healthy", health.strip()) is None, health
    # The other service goes on.
    await expect(row(page, "notes").locator('[data-label="State"]')).to_contain_text("running")
    await screenshot(page, "stack-status-killed")


async def test_a_runs_output_arrives_live_and_its_plan_is_approved_in_the_page(
    page: Page, lab: Lab
) -> None:
    await sign_in(page, lab)
    source = KOMBINATION.format(name=lab.stack, greeting="two")
    run = await lab.env.start(source, auto_approve=False)  # waits for approval
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}/deployments/{run['id']}")

    waiting = page.get_by_role("heading", name=re.compile("waiting for your approval"))
    await expect(waiting).to_be_visible(timeout=LIVE)
    await expect(page.get_by_test_id("log-state")).to_have_text("live")
    before = await page.get_by_test_id("log-line").count()
    await expect(page.get_by_text("node box: no change")).to_be_visible()
    await axe_check(page)

    await page.get_by_role("button", name="Approve and deploy").click()

    # Lines of the rollout arrive on the open stream, then its end.
    rollout = page.get_by_test_id("log-line").filter(has_text="rollout/box")
    await expect(rollout.first).to_be_visible(timeout=LIVE * 2)
    ended = page.get_by_test_id("log-state")
    await expect(ended).to_have_text("ended: succeeded", timeout=LIVE * 2)
    assert await page.get_by_test_id("log-line").count() > before
    await expect(page.get_by_test_id("run-state")).to_contain_text("succeeded", timeout=LIVE)
    await screenshot(page, "stack-run")


async def test_the_editor_checks_as_you_type_and_points_at_the_line(page: Page, lab: Lab) -> None:
    await sign_in(page, lab)
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}/edit")
    editor = page.get_by_role("textbox", name=re.compile("kombination.yaml"))
    await expect(editor).to_have_value(re.compile("replicas: 2"))
    validity = page.get_by_test_id("validity")
    await expect(validity).to_have_text(re.compile("valid"), timeout=LIVE)

    text = await editor.input_value()
    await editor.fill(text.replace("replicas: 2", "replicas: two"))

    await expect(validity).to_have_text(re.compile("1 problem"), timeout=LIVE)
    line = text.splitlines().index("      replicas: 2") + 1
    problem = page.get_by_role("button", name=re.compile(f"line {line} "))
    await expect(problem).to_contain_text("spec.services.notes.replicas")
    await expect(page.get_by_role("button", name="Deploy", exact=True)).to_be_disabled()
    await problem.click()
    selected = await editor.evaluate("e => e.value.slice(e.selectionStart, e.selectionEnd)")
    assert selected == "      replicas: two"

    await editor.fill(text)
    await expect(validity).to_have_text(re.compile("valid"), timeout=LIVE)
    await expect(page.get_by_role("button", name="Deploy", exact=True)).to_be_enabled()


async def test_history_rolls_back_to_the_first_revision(page: Page, lab: Lab) -> None:
    newer = await lab.env.deploy(KOMBINATION.format(name=lab.stack, greeting="three"))
    assert newer["state"] == "succeeded", newer
    await sign_in(page, lab)
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}/history")
    table = page.get_by_test_id("revisions-table")
    await expect(table.locator("tbody tr").first).to_contain_text("deployed")

    await page.get_by_role("button", name="Roll back to revision 1").click()
    await expect(page.get_by_test_id("diff-text")).to_contain_text("echo one")
    await page.get_by_label("Approve the plan without asking").check()
    await page.get_by_role("button", name="Start the rollback to revision 1").click()

    await page.wait_for_url(re.compile(r"/deployments/[0-9a-f]+$"))
    ended = page.get_by_test_id("log-state")
    await expect(ended).to_have_text("ended: succeeded", timeout=LIVE * 2)
    await page.goto(f"{lab.api.url}/stacks/{lab.stack}/history")
    newest = table.locator("tbody tr").first
    await expect(newest).to_contain_text("rollback of 1")
    await expect(newest).to_contain_text("deployed")
