"""The failure text of a rollout: one bounded line per distinct cause, in the user's words."""

from __future__ import annotations

import docker.errors
import requests

from kombify.agent.engine import short_reason
from kombify.workflows.failures import unhealthy_text

OFFLINE = 'Get "https://registry.example/v2/": dial tcp: lookup registry.example: no such host'


def _missing(image: str) -> str:
    # The agent's reason for an image it lacks and cannot pull, built from a real SDK error.
    response = requests.Response()
    response.status_code = 500
    error = docker.errors.APIError(
        f"500 Server Error for http+docker://localhost/v1.41/images/create?fromImage={image}: "
        "Internal Server Error",
        response=response,
        explanation=OFFLINE,
    )
    return (
        f"image `{image}` is neither on the node nor on the machine running kombify, and the "
        f"node cannot pull it ({short_reason(error)}): pull or build it on the machine running "
        "kombify and kombify ships it"
    )


def test_nine_missing_images_are_one_line() -> None:
    failed = [("nas", f"svc{i}", _missing(f"app{i}:1")) for i in range(9)]
    failed.append(("nas", "web", "health check failed 3 times: exit 1"))
    text = unhealthy_text(failed)
    assert text.splitlines() == [
        "10 service(s) unhealthy:",
        "nas/svc0 (app0:1), nas/svc1 (app1:1), nas/svc2 (app2:1), nas/svc3 (app3:1), nas/svc4 "
        "(app4:1), nas/svc5 (app5:1) and 3 more: its image is neither on the node nor on the "
        f"machine running kombify, and the node cannot pull it ({OFFLINE}): pull or build it on "
        "the machine running kombify and kombify ships it",
        "nas/web: health check failed 3 times: exit 1",
    ]
    assert "http+docker" not in text and "LoadImage" not in text


def test_text_stays_bounded_whatever_the_reasons() -> None:
    failed = [("n", f"s{i}", f"reason {i} " + "x" * 5000) for i in range(50)]
    lines = unhealthy_text(failed).splitlines()
    assert len(lines) == 1 + 8 + 1 and lines[-1] == "... and 42 more causes"
    assert all(len(line) <= 400 for line in lines)
