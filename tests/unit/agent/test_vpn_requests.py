"""What the agent's ApplyVpn refuses before it touches the node (kombify/agent/wireguard.py)."""

from __future__ import annotations

import pytest

from kombify.agent.wireguard import Peer, Tunnel, VpnRefused

KEY = "hLsSY1imVL51T9ZViRUxuPSP7j5sELJiOry7LIcFixI="


def _tunnel(**change: object) -> Tunnel:
    base: dict[str, object] = {
        "interface": "wg-kombify",
        "address": "10.66.0.1/24",
        "listen_port": 51820,
        "peers": [Peer(KEY, ["10.66.0.2/32"], "172.22.0.2:51820", 25)],
    }
    return Tunnel(**{**base, **change})  # type: ignore[arg-type]


def test_a_good_request_passes() -> None:
    _tunnel().check()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"interface": "-rf"}, "interface name"),
        ({"interface": "a-name-too-long-for-linux"}, "interface name"),
        ({"address": "10.66.0.1"}, None),
        ({"address": "nope/24"}, "is not an IPv4 address"),
        ({"listen_port": 0}, "is not a port"),
        ({"peers": [Peer("short", ["10.66.0.2/32"])]}, "not base64"),
        ({"peers": [Peer("AAAA", ["10.66.0.2/32"])]}, "not a WireGuard key"),
        ({"peers": [Peer(KEY, ["10.66.0.2/33"])]}, "is not a network"),
        ({"peers": [Peer(KEY, ["10.66.0.2/32"], "172.22.0.2")]}, "is not host:port"),
        ({"peers": [Peer(KEY, ["10.66.0.2/32"]), Peer(KEY, ["10.66.0.3/32"])]}, "twice"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(
    change: dict[str, object], words: str | None
) -> None:
    if words is None:  # a bare address is a /32 to ip(8): fine
        _tunnel(**change).check()
        return
    with pytest.raises(VpnRefused, match=words):
        _tunnel(**change).check()


def test_a_failing_command_never_echoes_the_private_key() -> None:
    from kombify.agent.wireguard import VpnFailed, _run

    secret = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
    # As `wg syncconf` quotes a configuration line it read on stdin and rejects.
    with pytest.raises(VpnFailed) as caught:
        _run(["sh", "-c", "cat >&2; exit 1"], stdin=f"PrivateKey = {secret}\n", secret=secret)
    assert secret not in str(caught.value)
    assert "PrivateKey = (hidden)" in str(caught.value)
