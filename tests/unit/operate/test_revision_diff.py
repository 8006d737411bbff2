"""The diff between two kombination revisions: what changed, and never a secret's value."""

from __future__ import annotations

from kombify.operate.revision_diff import (
    Change,
    diff_sources,
    mask_source,
    mask_text,
    semantic_changes,
)

OLD = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: lab}
spec:
  stackkit: base-homelab
  domain: lab.home
  nodes:
    - {name: box, provider: sim, resources: {cpus: 1, memory: 512Mi}}
    - {name: old, provider: sim}
  services:
    web:
      image: kombify-test/httpd:1
      ports: [{container: 80, host: 8080}]
      env: {GREETING: "hello", DB_PASSWORD: "hunter2-old", GONE: "x"}
      volumes: ["data:/data"]
      command: ["sh", "-c", "run --token=s3cr3t-old"]
      healthcheck: {http: "http://localhost:80/", interval: 5s}
    db:
      image: postgres:16
"""

NEW = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {name: lab}
spec:
  stackkit: modern-homelab
  domain: lab.home
  nodes:
    - {name: box, provider: sim, resources: {cpus: 2, memory: 512Mi}}
    - {name: extra, provider: sim}
  services:
    web:
      image: kombify-test/httpd:2
      replicas: 2
      ports: [{container: 80, host: 9090}]
      env:
        GREETING: "bonjour"
        DB_PASSWORD: "hunter2-new"
        NEW_KEY: "fresh-value"
      volumes: ["data:/data", "logs:/logs"]
      command: ["sh", "-c", "run --token=s3cr3t-new"]
      healthcheck: {http: "http://localhost:80/health", interval: 5s}
    cache:
      image: redis:7
"""

SECRETS = ("hunter2", "s3cr3t", "fresh-value", "bonjour", "hello")


def _by_name(changes: list[Change]) -> dict[str, Change]:
    return {f"{c.object} {c.name}": c for c in changes}


def test_services_nodes_and_settings_changes_are_named() -> None:
    changes = _by_name(semantic_changes(OLD, NEW))

    assert changes["service cache"].kind == "added"
    assert changes["service db"].kind == "removed"
    assert changes["node extra"].kind == "added"
    assert changes["node old"].kind == "removed"
    assert changes["node box"].details == ("resources.cpus: 1 → 2",)
    assert changes["setting spec.stackkit"].details == (
        "spec.stackkit: base-homelab → modern-homelab",
    )
    assert "setting spec.domain" not in changes
    web = changes["service web"]
    assert web.kind == "changed"
    assert web.details == (
        "image: kombify-test/httpd:1 → kombify-test/httpd:2",
        "replicas: (default) → 2",
        "ports: [8080:80/tcp] → [9090:80/tcp]",
        "env: +NEW_KEY, -GONE, ~DB_PASSWORD, ~GREETING (values hidden)",
        "volumes: [data:/data] → [data:/data, logs:/logs]",
        "healthcheck.http: http://localhost:80/ → http://localhost:80/health",
        "command: changed",
    )


def test_summary_is_one_line_of_what_changed() -> None:
    diff = diff_sources(OLD, NEW)

    assert diff.summary == (
        "~spec.stackkit; ~node box (resources.cpus); +node extra; -node old; +service cache; "
        "-service db; ~service web (image, replicas, ports, env, volumes, healthcheck.http, "
        "command)"
    )


def test_no_env_value_or_secret_reaches_either_diff() -> None:
    diff = diff_sources(OLD, NEW)
    shown = diff.text + repr(diff.changes) + diff.summary

    for secret in SECRETS:
        assert secret not in shown, secret
    assert "-      env: {GREETING: ****, DB_PASSWORD: ****, GONE: ****}" in diff.text
    assert "+        NEW_KEY: ****" in diff.text
    # Both commands read the same once masked: the text diff shows no change, the semantic one
    # still says that the command changed.
    assert '\n       command: ["sh", "-c", "run --token=****"]\n' in diff.text
    assert "+      image: kombify-test/httpd:2" in diff.text


def test_secret_looking_keys_and_url_passwords_are_masked() -> None:
    text = (
        "spec:\n"
        "  nodes:\n"
        "    - {name: a, provider: hetzner, ssh: {hostKey: 'ssh-ed25519 AAAAC3Nza'}}\n"
        "  services:\n"
        "    app:\n"
        '      command: ["app", "--db", "postgres://kombi:pa55word@db:5432/x",\n'
        '                "--api-key", "k-123"]\n'
        "      notes: |\n"
        "        some text\n"
        "        more\n"
        "  apiToken: |\n"
        "    abc\n"
        "    def\n"
        "  other: plain\n"
    )

    masked = mask_source(text)

    assert "AAAAC3Nza" not in masked and "pa55word" not in masked and "k-123" not in masked
    assert "postgres://kombi:****@db:5432/x" in masked
    assert "  apiToken: ****\n  other: plain\n" in masked  # a block scalar keeps its line break
    assert "        some text\n" in masked  # not secret: left as written


def test_mask_text_patterns() -> None:
    assert mask_text("PASSWORD=abc ./run") == "PASSWORD=**** ./run"
    assert mask_text("--client-secret xyz --port 80") == "--client-secret **** --port 80"
    assert mask_text("https://u:p@example.org/") == "https://u:****@example.org/"
    assert mask_text("echo v1 > /www/index.html") == "echo v1 > /www/index.html"


def test_from_nothing_everything_is_added() -> None:
    diff = diff_sources(None, NEW, new_label="revision 1")

    kinds = {(c.object, c.name): c.kind for c in diff.changes}
    assert kinds == {
        ("setting", "metadata.name"): "added",
        ("setting", "spec.stackkit"): "added",
        ("setting", "spec.domain"): "added",
        ("node", "box"): "added",
        ("node", "extra"): "added",
        ("service", "web"): "added",
        ("service", "cache"): "added",
    }
    assert diff.text.startswith("--- before\n+++ revision 1\n")


def test_identical_sources_have_no_changes() -> None:
    diff = diff_sources(OLD, OLD)

    assert diff.changes == () and diff.text == "" and diff.summary == "no changes"
    reformatted = OLD.replace("image: postgres:16", "image: 'postgres:16'")
    assert diff_sources(OLD, reformatted).summary == "no changes (formatting only)"
