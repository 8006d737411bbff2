"""The dashboard's simulation pages in Chromium, on a real ``kombify api`` and real KombiSim nodes.

A person signs up (open sign-up: an organisation of their own, so only its simulations
show), creates a simulation from a template on /simulations, watches its node turn
``running``, copies its SSH port, stops and starts it, exports it and deletes it. What the
page says is checked against the Docker engine itself.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.async_api import Page, expect

from kombify.sim import client as sim_client
from kombify.sim import labels
from kombify.sim.engine import SimEngine
from kombify.sim.image import ensure_node_image
from tests.support.api_process import ApiProcess, running_api
from tests.support.browser import axe_check, screenshot

PASSWORD = "a long enough passphrase for the dashboard"  # noqa: S105 - the tests' own
# Nodes boot their own dockerd and Docker may be busy with other suites: generous, never timed.
NODE_WAIT_MS = 90_000


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    """The local engine (a `docker` test by this name), with the node image the API uses."""
    client = sim_client.docker_client()
    ensure_node_image(client)
    yield client
    client.close()


@pytest.fixture(scope="module")
def sims_api(tmp_path_factory: pytest.TempPathFactory, docker_client: Any) -> Iterator[ApiProcess]:
    """``kombify api`` with open sign-up (the simulation routes need no Temporal)."""
    del docker_client  # only its image and skip
    with running_api(tmp_path_factory.mktemp("sims-api"), env={"KOMBIFY_SIGNUP": "open"}) as api:
        yield api


@pytest.fixture
def made(docker_client: Any) -> Iterator[list[str]]:
    """Names of simulations a test made; deleted from the engine afterwards, whatever happened."""
    names: list[str] = []
    yield names
    engine = SimEngine(docker_client)
    for name in names:
        engine.delete(name)


def unique(prefix: str = "kd") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


async def sign_up(page: Page, api: ApiProcess) -> None:
    """A new account with an organisation of its own, signed in in ``page``'s context."""
    email = f"{secrets.token_hex(4)}@example.com"
    request = page.context.request
    answer = await request.post(
        f"{api.url}/v1/auth/signup", data={"email": email, "password": PASSWORD}
    )
    assert answer.status == 201, await answer.text()
    answer = await request.post(
        f"{api.url}/v1/auth/login", data={"email": email, "password": PASSWORD}
    )
    assert answer.status == 200, await answer.text()


async def create_by_api(page: Page, api: ApiProcess, template: str, name: str) -> None:
    """A simulation made through the API with the page's session (CSRF token from its cookie)."""
    cookies = {c["name"]: c["value"] for c in await page.context.cookies(api.url)}
    answer = await page.context.request.post(
        f"{api.url}/v1/simulations",
        data={"template": template, "name": name},
        headers={"X-CSRF-Token": cookies.get("__Host-kombify_csrf", "")},
    )
    assert answer.status == 201, await answer.text()


def container(client: Any, simulation: str, node: str) -> Any:
    """The node's container as the engine has it."""
    found = client.containers.list(
        all=True,
        filters={"label": [f"{labels.SIMULATION}={simulation}", f"{labels.NODE}={node}"]},
    )
    assert len(found) == 1, f"expected one container for {simulation}/{node}, found {found}"
    return found[0]


def ssh_port(client: Any, simulation: str, node: str) -> str:
    """The loopback port the engine published for the node's sshd."""
    box = container(client, simulation, node)
    box.reload()
    return str(box.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])


async def test_create_from_a_template_and_see_its_node_turn_running(
    page: Page,
    page_requests: list[str],
    sims_api: ApiProcess,
    docker_client: Any,
    made: list[str],
) -> None:
    await sign_up(page, sims_api)
    await page.goto(f"{sims_api.url}/simulations")
    await expect(page.get_by_text("No simulations yet")).to_be_visible()
    template = page.get_by_role("listitem").filter(has=page.get_by_role("heading", name="nas-pi"))
    await expect(template).to_contain_text("2 nodes: nas, pi")
    await screenshot(page, "simulations")
    await axe_check(page)
    # The list page loads no chart library: uPlot is fetched by the simulation's page only.
    assert not [url for url in page_requests if "uPlot" in url]

    # A name the API refuses: its message shows at the field, nothing is made.
    field = page.get_by_label("Name (optional)")
    await field.fill("Not A Label")
    await page.get_by_role("button", name="Create a simulation from nas-pi").click()
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#sim-name-error")).to_contain_text(
        "simulation name `Not A Label` is not valid"
    )
    await expect(field).to_have_accessible_description(re.compile("is not valid"))

    name = unique()
    made.append(name)
    await field.fill(name)
    await page.get_by_role("button", name="Create a simulation from nas-pi").click()

    await page.wait_for_url(f"{sims_api.url}/simulations/{name}")
    await expect(page.get_by_role("heading", level=1, name=name)).to_be_visible()
    for node in ("nas", "pi"):
        card = page.get_by_role("article", name=node, exact=True)
        await expect(card.get_by_test_id("node-state")).to_have_text(
            "running", timeout=NODE_WAIT_MS
        )
        assert container(docker_client, name, node).status == "running"
        # The page's port is the engine's, and the command line logs in there.
        port = ssh_port(docker_client, name, node)
        await expect(card.locator("dd").nth(1)).to_contain_text(port)
        command = await card.get_by_label("Command line (on the kombify machine)").input_value()
        assert re.search(rf" -p {port} .*kombify@127\.0\.0\.1$", command), command
    await expect(page.get_by_test_id("sim-state")).to_have_text("running")

    # Copy the port: it reaches the clipboard and the change is announced.
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=sims_api.url)
    nas = page.get_by_role("article", name="nas", exact=True)
    await nas.get_by_role("button", name="Copy SSH port of nas").click()
    await expect(nas.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    assert await page.evaluate("navigator.clipboard.readText()") == ssh_port(
        docker_client, name, "nas"
    )

    # Statistics: a row per running node with its memory limit, and the charts drawn.
    stats = page.get_by_role("table", name="Latest sample per node")
    await expect(stats.get_by_role("row", name=re.compile(r"^pi .*of 512 MiB"))).to_be_visible(
        timeout=NODE_WAIT_MS
    )
    await expect(page.locator(".u-wrap canvas")).to_have_count(3)
    assert [url for url in page_requests if "uPlot" in url]
    await screenshot(page, "simulation")
    await axe_check(page)

    # Back on the list, the new simulation shows with its nodes' states.
    await page.get_by_role("link", name="Simulations", exact=True).first.click()
    nodes = page.get_by_role("list", name=f"Nodes of {name}")
    await expect(nodes.get_by_role("listitem")).to_have_text(
        [re.compile(r"nas\s*running"), re.compile(r"pi\s*running")]
    )


async def test_stop_and_start_a_simulation(
    page: Page, sims_api: ApiProcess, docker_client: Any, made: list[str]
) -> None:
    await sign_up(page, sims_api)
    name = unique()
    made.append(name)
    await create_by_api(page, sims_api, "single-node", name)
    await page.goto(f"{sims_api.url}/simulations/{name}")
    state = page.get_by_role("article", name="server", exact=True).get_by_test_id("node-state")
    await expect(state).to_have_text("running", timeout=NODE_WAIT_MS)
    start = page.get_by_role("button", name="Start", exact=True)
    await expect(start).to_be_disabled()  # every node runs already

    await page.get_by_role("button", name="Stop", exact=True).click()
    await expect(page.get_by_role("status").filter(has_text=f"{name} stopped.")).to_be_visible(
        timeout=NODE_WAIT_MS
    )
    await expect(state).to_have_text("exited")
    await expect(page.get_by_test_id("sim-state")).to_have_text("stopped")
    assert container(docker_client, name, "server").status == "exited"
    # No SSH port while stopped (Docker publishes one only while the node runs).
    await expect(
        page.get_by_role("article", name="server", exact=True).locator("dd").nth(1)
    ).to_have_text("while running")
    await expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()

    await start.click()
    await expect(page.get_by_role("status").filter(has_text=f"{name} started.")).to_be_visible(
        timeout=NODE_WAIT_MS
    )
    await expect(state).to_have_text("running")
    assert container(docker_client, name, "server").status == "running"
    await expect(
        page.get_by_role("article", name="server", exact=True).locator("dd").nth(1)
    ).to_contain_text(ssh_port(docker_client, name, "server"))


async def test_export_then_delete_with_confirmation(
    page: Page, sims_api: ApiProcess, docker_client: Any, made: list[str], tmp_path: Path
) -> None:
    await sign_up(page, sims_api)
    name = unique()
    made.append(name)
    await create_by_api(page, sims_api, "single-node", name)
    # As over plain HTTP to a LAN address (no secure context): no Clipboard API at all.
    await page.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined})"
    )
    await page.goto(f"{sims_api.url}/simulations/{name}")
    await expect(page.get_by_test_id("sim-state")).to_have_text("running", timeout=NODE_WAIT_MS)

    # Copying still works (a selected hidden field), and says so.
    server = page.get_by_role("article", name="server", exact=True)
    await server.get_by_role("button", name="Copy kombify command of server").click()
    await expect(server.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    await page.evaluate(
        "() => { const t = document.createElement('textarea'); t.id = 'paste';"
        " t.setAttribute('aria-label', 'paste'); document.body.append(t); t.focus(); }"
    )
    await page.keyboard.press("Control+V")
    assert await page.locator("#paste").input_value() == f"kombify sim ssh {name} server"
    await page.locator("#paste").evaluate("t => t.remove()")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="Export").click()
    download = await download_info.value
    assert download.suggested_filename == f"{name}.yaml"
    saved = tmp_path / download.suggested_filename
    await download.save_as(saved)
    exported = yaml.safe_load(saved.read_text())
    assert exported["name"] == name
    assert [n["name"] for g in exported["groups"] for n in g["nodes"]] == ["server"]

    # Cancel (Escape) leaves everything as it was.
    await page.get_by_role("button", name="Delete…").click()
    dialog = page.get_by_role("dialog", name=f"Delete {name}?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await axe_check(page)
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert container(docker_client, name, "server").status == "running"

    await page.get_by_role("button", name="Delete…").click()
    await dialog.get_by_role("button", name=f"Delete {name}").click()
    await page.wait_for_url(f"{sims_api.url}/simulations")
    await expect(page.get_by_text("No simulations yet")).to_be_visible()
    assert (
        docker_client.containers.list(all=True, filters={"label": f"{labels.SIMULATION}={name}"})
        == []
    )
    # The API agrees: the simulation is gone for this organisation too.
    gone = await page.context.request.get(f"{sims_api.url}/v1/simulations/{name}")
    assert gone.status == 404
