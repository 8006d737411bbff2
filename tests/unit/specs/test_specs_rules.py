"""Validation beyond the shared files: syntax errors, ordering, every StackKit rule."""

from __future__ import annotations

import textwrap

import pytest

from kombify.errors import SpecError
from kombify.specs import KombinationError, Problem, load_kombination, validate_text

HEAD = "apiVersion: kombify.io/v1\nkind: Kombination\nmetadata: {name: lab}\nspec:\n"


def spec(body: str) -> str:
    return HEAD + textwrap.indent(textwrap.dedent(body), "  ")


def paths(text: str) -> list[tuple[str, int | None]]:
    return [(p.path, p.line) for p in validate_text(text)]


def messages(text: str) -> list[str]:
    return [p.message for p in validate_text(text)]


BASE_NODE = "nodes: [{name: nas, provider: local, address: 10.0.0.2}]\n"


def test_syntax_error_has_line_and_column() -> None:
    [problem] = validate_text("apiVersion: kombify.io/v1\nkind: [Kombination\nspec: {}\n")
    assert problem.path == "" and problem.line == 3 and problem.column is not None
    assert problem.format("k.yaml").startswith(f"k.yaml:3:{problem.column}: YAML syntax error")


def test_tab_indentation_is_a_syntax_error() -> None:
    [problem] = validate_text("apiVersion: x\n\tkind: y\n")
    assert problem.line == 2 and "syntax" in problem.message


def test_empty_and_non_mapping_documents() -> None:
    assert messages("") == ["the file is empty: expected a kombination"]
    assert paths("- a\n- b\n") == [("", 1)]


def test_duplicate_yaml_key() -> None:
    text = spec("stackkit: base-homelab\nstackkit: base-homelab\n" + BASE_NODE)
    assert ("spec.stackkit", 6) in paths(text)
    assert 'duplicate key "stackkit" (first at line 5)' in messages(text)


def test_all_problems_at_once_sorted_by_line() -> None:
    text = spec(
        """\
        stackkit: base-homelab
        variant: debian-11
        nodes:
          - {name: nas, provider: local, address: 10.0.0.2, ssh: {prot: 22}}
        healing: {every: soon}
        """
    )
    problems = validate_text(text)
    assert [p.path for p in problems] == [
        "spec.variant",
        "spec.nodes[0].ssh.prot",
        "spec.healing.every",
    ]
    assert [p.line for p in problems] == sorted(p.line or 0 for p in problems)
    assert 'did you mean "port"?' in problems[1].message
    assert "debian-12" in problems[0].message


def test_api_version_and_kind_are_fixed() -> None:
    text = spec("stackkit: base-homelab\n" + BASE_NODE).replace("kombify.io/v1", "v1")
    assert messages(text) == ['must be "kombify.io/v1", got "v1"']


def test_stackkit_version_pin() -> None:
    assert validate_text(spec("stackkit: base-homelab@1\n" + BASE_NODE)) == []
    assert validate_text(spec("stackkit: base-homelab@1.0.0\n" + BASE_NODE)) == []
    assert paths(spec("stackkit: base-homelab@2\n" + BASE_NODE)) == [("spec.stackkit", 5)]


def test_unknown_role_with_suggestion() -> None:
    text = spec("stackkit: base-homelab\nnodes: [{name: nas, provider: sim, role: mian}]\n")
    [problem] = validate_text(text)
    assert problem.path == "spec.nodes[0].role"
    assert (
        problem.message
        == 'unknown role "mian" for base-homelab (roles: main) (did you mean "main"?)'
    )


def test_cloud_only_fields_on_local_node() -> None:
    text = spec("stackkit: base-homelab\nnodes: [{name: nas, provider: sim, type: cx22}]\n")
    assert paths(text) == [("spec.nodes[0].type", 6)]


def test_address_port_contradicting_ssh_port() -> None:
    node = "nodes: [{name: nas, provider: local, address: '10.0.0.2:2222', ssh: {port: 22}}]\n"
    assert paths(spec("stackkit: base-homelab\n" + node)) == [("spec.nodes[0].ssh.port", 6)]


def test_quantities_must_be_positive_and_well_formed() -> None:
    for bad in ("lots", "512", "4GB", "-1Gi"):
        text = spec(
            "stackkit: base-homelab\n"
            f"nodes: [{{name: b, provider: sim, resources: {{memory: {bad}}}}}]\n"
        )
        assert paths(text) == [("spec.nodes[0].resources.memory", 6)], bad
    zero = spec(
        "stackkit: base-homelab\nnodes: [{name: b, provider: sim, resources: {disk: 0Gi}}]\n"
    )
    assert messages(zero) == ["must be more than 0"]


def test_memory_must_fit_the_node() -> None:
    text = spec(
        """\
        stackkit: base-homelab
        nodes: [{name: box, provider: sim, resources: {memory: 512Mi}}]
        services:
          dashboard: {}
          monitoring: {}
          big: {image: "nginx:1.27", memory: 300Mi}
        """
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.nodes[0].resources.memory"
    assert (
        problem.message
        == (
            'node "box" has 512Mi but needs 832Mi: system 256Mi, reverse-proxy 64Mi, '
            "dashboard 128Mi, monitoring 128Mi, big 256Mi"
        )
        or "needs" in problem.message
    )


def test_one_service_larger_than_its_node() -> None:
    text = spec(
        """\
        stackkit: base-homelab
        nodes: [{name: box, provider: sim, resources: {memory: 1Gi}}]
        services:
          db: {image: "postgres:16", memory: 2Gi}
        """
    )
    [problem] = validate_text(text)
    assert problem.message.startswith(
        'service db needs 2Gi (plus 256Mi for the system) but node "box"'
    )


def test_port_clash_with_a_stackkit_default() -> None:
    text = spec(
        """\
        stackkit: base-homelab
        nodes: [{name: box, provider: sim}]
        services:
          web: {image: "nginx:1.27", ports: [{container: 80, host: 80}]}
        """
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.services.web.ports[0].host"
    assert (
        problem.message
        == 'host port 80/tcp on node "box" is already used by reverse-proxy (StackKit default)'
    )


def test_same_port_on_different_nodes_is_fine_but_not_in_a_swarm() -> None:
    nodes = """\
        nodes:
          - {name: main, provider: sim, role: main}
          - {name: w1, provider: sim, role: worker}
          - {name: w2, provider: sim, role: worker}
        services:
          a: {image: "nginx:1.27", node: w1, ports: [{container: 80, host: 8080}]}
          b: {image: "nginx:1.27", node: w2, ports: [{container: 80, host: 8080}]}
        """
    assert validate_text(spec("stackkit: modern-homelab\n" + textwrap.dedent(nodes))) == []
    swarm = (
        textwrap.dedent(nodes)
        .replace("role: main", "role: manager")
        .replace("role: worker", "role: manager")
    )
    [problem] = validate_text(spec("stackkit: ha-homelab\n" + swarm))
    assert problem.path == "spec.services.b.ports[0].host"
    assert "in the swarm" in problem.message


def test_udp_and_tcp_on_the_same_port_do_not_clash() -> None:
    text = spec(
        """\
        stackkit: base-homelab
        nodes: [{name: box, provider: sim}]
        services:
          dns:
            image: "coredns/coredns:1.11.1"
            ports: [{container: 53, host: 53, protocol: udp}, {container: 53, host: 53}]
        """
    )
    assert validate_text(text) == []


def test_custom_service_needs_an_image() -> None:
    text = spec(
        "stackkit: base-homelab\nnodes: [{name: b, provider: sim}]\nservices: {dashbord: {}}\n"
    )
    [problem] = validate_text(text)
    assert problem.path == "spec.services.dashbord.image"
    assert 'did you mean "dashboard"?' in problem.message


def test_service_name_must_be_a_dns_label() -> None:
    text = spec(
        "stackkit: base-homelab\nnodes: [{name: b, provider: sim}]\n"
        "services: {My_App: {image: 'x:1'}}\n"
    )
    assert ("spec.services.My_App", 7) in paths(text)


def test_one_healthcheck_kind() -> None:
    svc = "services: {w: {image: 'x:1', healthcheck: {http: 'http://localhost/', tcp: 80}}}\n"
    text = spec("stackkit: base-homelab\nnodes: [{name: b, provider: sim}]\n" + svc)
    assert paths(text) == [("spec.services.w.healthcheck", 7)]


@pytest.mark.parametrize(
    ("kit", "nodes", "message"),
    [
        (
            "modern-homelab",
            "[{name: a, provider: sim, role: main}]",
            "modern-homelab needs at least 2 nodes, got 1",
        ),
        (
            "modern-homelab",
            "[{name: a, provider: sim, role: worker}, {name: b, provider: sim, role: worker}]",
            'modern-homelab needs at least 1 "main" nodes, got 0',
        ),
        (
            "ha-homelab",
            "[{name: a, provider: sim}, {name: b, provider: sim},"
            " {name: c, provider: sim, role: worker}]",
            'ha-homelab needs an odd number (at least 3) of "manager" nodes'
            " for a Raft quorum, got 2",
        ),
        (
            "cloud-hybrid",
            "[{name: a, provider: sim}, {name: b, provider: sim, role: edge}]",
            "cloud-hybrid needs at least one cloud node (hetzner, aws or azure)",
        ),
    ],
)
def test_node_and_role_counts(kit: str, nodes: str, message: str) -> None:
    vpn = "network: {vpn: {enabled: true}}\n" if kit == "cloud-hybrid" else ""
    problems = validate_text(spec(f"stackkit: {kit}\nnodes: {nodes}\n{vpn}"))
    assert message in [p.message for p in problems]
    assert all(p.path == "spec.nodes" for p in problems)


def test_missing_vpn_section_points_at_network_path() -> None:
    nodes = "nodes: [{name: h, provider: sim}, {name: e, provider: aws, role: edge}]\n"
    [problem] = validate_text(spec("stackkit: cloud-hybrid\n" + nodes))
    assert problem.path == "spec.network.vpn.enabled"
    assert problem.line == 4  # `spec:` is the nearest written parent


def test_cloud_node_must_not_have_an_address() -> None:
    nodes = (
        "nodes: [{name: h, provider: sim},"
        " {name: e, provider: aws, role: edge, address: 1.2.3.4}]\n"
    )
    text = spec("stackkit: cloud-hybrid\n" + nodes + "network: {vpn: {enabled: true}}\n")
    assert paths(text) == [("spec.nodes[1].address", 6)]


def test_load_kombination_fills_defaults() -> None:
    k = load_kombination(spec("stackkit: base-homelab\n" + BASE_NODE))
    assert k.spec.variant == "debian-12"
    assert k.spec.domain == "lab.home.arpa"
    assert k.spec.nodes[0].role == "main"
    assert k.spec.nodes[0].ssh.user == "root" and k.spec.nodes[0].ssh_port == 22
    assert k.spec.healing.every == "5m"


def test_load_kombination_raises_with_every_problem() -> None:
    with pytest.raises(KombinationError) as caught:
        load_kombination(spec("stackkit: nope\nnodes: []\n"), filename="x.yaml")
    assert isinstance(caught.value, SpecError)
    assert [p.path for p in caught.value.problems] == ["spec.stackkit", "spec.nodes"]
    assert str(caught.value).startswith("x.yaml:5: spec.stackkit: ")


def test_problem_format_and_dict() -> None:
    problem = Problem("spec.nodes", 7, "bad")
    assert problem.format("k.yaml") == "k.yaml:7: spec.nodes: bad"
    assert Problem("", None, "empty").format("k.yaml") == "k.yaml: empty"
    assert problem.to_dict() == {"path": "spec.nodes", "line": 7, "message": "bad"}


def test_alias_bomb_is_refused_quickly() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        name, previous = chr(97 + i), chr(96 + i)
        bomb += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]\n"
    assert messages(bomb) == ["the document is too large or too deeply nested"]


def test_replicas_with_a_host_port_validate() -> None:
    # The contract's modern-homelab example runs two replicas behind one host port: the first
    # replica publishes it (one engine binds a port once), so the file is valid.
    nodes = "stackkit: base-homelab\nnodes: [{name: b, provider: sim}]\n"
    published = "ports: [{container: 80, host: 8080}]"
    text = spec(nodes + f"services: {{w: {{image: 'x:1', {published}, replicas: 3}}}}\n")
    assert paths(text) == []


def test_a_kit_that_needs_a_vpn_refuses_headscale_whose_enrollment_never_ran() -> None:
    body = (
        "stackkit: cloud-hybrid\n"
        "nodes:\n"
        "  - {name: home, provider: sim, role: main}\n"
        "  - {name: edge, provider: hetzner, role: edge, type: cx22, location: fsn1}\n"
    )
    headscale = spec(body + "network: {vpn: {enabled: true, provider: headscale}}\n")
    assert paths(headscale) == [("spec.network.vpn.provider", 9)]
    assert "has not been exercised end to end" in messages(headscale)[0]
    assert paths(spec(body + "network: {vpn: {enabled: true}}\n")) == []


def test_healthcheck_start_period_is_a_duration() -> None:
    base = "stackkit: base-homelab\nnodes: [{name: b, provider: sim}]\n"
    check = "healthcheck: {{cmd: 'true', retries: 2, timeout: 1s, start_period: {}}}"
    assert paths(spec(base + f"services: {{w: {{image: 'x:1', {check.format('20s')}}}}}\n")) == []
    [(path, _)] = paths(spec(base + f"services: {{w: {{image: 'x:1', {check.format('soon')}}}}}\n"))
    assert path == "spec.services.w.healthcheck.start_period"


def test_reschedule_on_a_single_node_stack_is_refused_at_its_path() -> None:
    text = spec("stackkit: base-homelab\n" + BASE_NODE + "healing: {strategy: reschedule}\n")
    [problem] = validate_text(text)
    assert (problem.path, problem.line) == ("spec.healing.strategy", 7)
    assert "one node" in problem.message and "restart or redeploy" in problem.message


def test_a_healing_period_under_ten_seconds_is_refused() -> None:
    text = spec("stackkit: base-homelab\n" + BASE_NODE + "healing: {every: 5s}\n")
    [problem] = validate_text(text)
    assert problem.path == "spec.healing.every" and "at least 10s" in problem.message
    assert (
        validate_text(spec("stackkit: base-homelab\n" + BASE_NODE + "healing: {every: 10s}\n"))
        == []
    )
