"""``expose`` and ``spec.tls``: refused at the field that is wrong, with what to do instead."""

from __future__ import annotations

import pytest

from kombify.specs import load_kombination, validate_text

HEAD = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: lab}}
spec:
  stackkit: {kit}
{extra}  nodes:
    - {{name: main, provider: sim}}
    - {{name: w1, provider: sim, role: worker}}
  services:
{services}
"""


def _text(services: str, *, kit: str = "modern-homelab", extra: str = "") -> str:
    if kit != "modern-homelab":
        head = HEAD.replace("    - {{name: w1, provider: sim, role: worker}}\n", "")
    else:
        head = HEAD
    return head.format(kit=kit, extra=extra, services=services.rstrip("\n"))


PHOTOS = """\
    photos:
      image: kombify-test/httpd:1
      ports: [{container: 80, host: 8081}]
      expose: {host: photos, port: 80}
"""


def _problems(text: str) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in validate_text(text)]


def test_a_valid_route_loads_with_the_default_issuer() -> None:
    k = load_kombination(_text(PHOTOS))
    assert k.spec.services["photos"].expose is not None
    assert (k.spec.services["photos"].expose.host, k.spec.services["photos"].expose.port) == (
        "photos",
        80,
    )
    assert k.spec.tls.issuer == "internal"


def test_a_port_that_is_not_the_services_is_refused_at_expose_port() -> None:
    text = _text(PHOTOS.replace("port: 80}", "port: 8080}"))
    assert _problems(text) == [
        (
            "spec.services.photos.expose.port",
            "8080 is not a container port of photos (its ports: 80/tcp); declare it under "
            "ports, e.g. {container: 8080}",
        )
    ]


def test_a_service_on_a_worker_must_publish_the_port_on_the_host() -> None:
    text = _text(PHOTOS.replace("{container: 80, host: 8081}", "{container: 80}"))
    assert _problems(text) == [
        (
            "spec.services.photos.expose.port",
            'photos runs on node "w1" and the proxy on "main": publish container port 80 on a '
            "host port (ports: [{container: 80, host: ...}]); the proxy reaches it as "
            "<node address>:<host port>",
        )
    ]


def test_a_service_beside_the_proxy_needs_no_host_port() -> None:
    text = _text(
        PHOTOS.replace("{container: 80, host: 8081}", "{container: 80}") + "      node: main\n"
    )
    assert _problems(text) == []


def test_a_duplicate_host_is_refused_at_the_second_service() -> None:
    notes = PHOTOS.replace("photos:\n", "notes:\n").replace("8081", "8082")
    problems = validate_text(_text(PHOTOS + notes))
    assert [(p.path, p.message) for p in problems] == [
        ("spec.services.notes.expose.host", 'host "photos" is already exposed by photos')
    ]
    assert problems[0].line == 17


def test_an_unknown_field_or_a_bad_host_is_a_schema_problem() -> None:
    text = _text(PHOTOS.replace("host: photos,", "host: Photos_1,"))
    ((path, message),) = _problems(text)
    assert path == "spec.services.photos.expose.host"
    assert "DNS label" in message


def test_expose_needs_the_proxy_turned_on() -> None:
    text = _text(PHOTOS + "    reverse-proxy: {enabled: false}\n")
    assert _problems(text) == [
        (
            "spec.services.photos.expose",
            "the reverse proxy is turned off (spec.services.reverse-proxy.enabled: false), "
            "and exposed services are reached through it",
        )
    ]


def test_a_kit_without_a_proxy_refuses_expose() -> None:
    text = _text(
        PHOTOS,
        kit="ha-homelab",
    ).replace("- {name: main, provider: sim}", "- {name: m1, provider: sim, role: manager}")
    problems = [p for p in _problems(text) if "expose" in p[0]]
    assert problems == [
        (
            "spec.services.photos.expose",
            "ha-homelab has no reverse proxy kombify configures, so a service cannot be exposed "
            "by domain (base-homelab and modern-homelab route through theirs)",
        )
    ]


@pytest.mark.parametrize(
    ("tls", "domain", "expected"),
    [
        (
            "{issuer: acme}",
            "example.org",
            [
                (
                    "spec.tls.email",
                    "required with issuer acme: the ACME account's contact (expiry notices)",
                )
            ],
        ),
        (
            "{issuer: acme, email: me@example.org}",
            None,
            [
                (
                    "spec.tls.issuer",
                    "acme needs a public domain that resolves to the proxy, and lab.home.arpa "
                    "is local-only (.home.arpa, .lan, .local): use issuer internal, or set "
                    "spec.domain to a domain you own",
                )
            ],
        ),
        (
            "{issuer: internal, email: me@example.org}",
            None,
            [
                (
                    "spec.tls.email",
                    "only used with issuer acme (internal certificates have no account)",
                )
            ],
        ),
        ("{issuer: acme, email: me@example.org}", "example.org", []),
    ],
)
def test_tls_settings(tls: str, domain: str | None, expected: list[tuple[str, str]]) -> None:
    extra = f"  tls: {tls}\n" + (f"  domain: {domain}\n" if domain else "")
    assert _problems(_text(PHOTOS, extra=extra)) == expected


def test_acme_with_a_lan_domain_is_refused() -> None:
    extra = "  tls: {issuer: acme, email: me@example.org}\n  domain: box.lan\n"
    ((path, message),) = _problems(_text(PHOTOS, extra=extra))
    assert path == "spec.tls.issuer"
    assert "box.lan is local-only" in message


def test_expose_on_base_homelab_beside_its_proxy() -> None:
    text = _text(
        PHOTOS.replace("{container: 80, host: 8081}", "{container: 80}"), kit="base-homelab"
    )
    assert _problems(text) == []
