"""Host key pins: parsing, fingerprints, the trust-on-first-use decision, and a source scan."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kombify.activities.hostkeys import decide
from kombify.errors import HostKeyChangedError
from kombify.hostkeys import HostKey
from kombify.specs import validate_text

ROOT = Path(__file__).resolve().parents[2]


def _keygen(tmp_path: Path, name: str, kind: str = "ed25519") -> tuple[HostKey, str]:
    path = tmp_path / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@node", "-f", str(path)], check=True
    )
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True, capture_output=True, text=True
    )
    return HostKey.parse(Path(f"{path}.pub").read_text()), listed.stdout.split()[1]


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_fingerprint_is_openssh_s(tmp_path: Path, kind: str) -> None:
    key, expected = _keygen(tmp_path, "k", kind)
    assert key.fingerprint == expected
    assert "root@node" not in key.line  # the comment is not part of the pin


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "expected an OpenSSH public key line"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "unknown host key type `ssh-dss`"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        # An ed25519 blob under another type's name: a pasted mix-up.
        (
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
            "not a `ssh-rsa` key",
        ),
    ],
)
def test_bad_lines_are_refused(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        HostKey.parse(line)


def test_first_contact_records_what_the_node_presents(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    pinned = decide(stack="s", node="n", presented=key, pinned=None)
    assert (pinned.key, pinned.source, pinned.recorded) == (key, "first-use", True)


def test_same_key_is_verified_not_recorded(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    pinned = decide(stack="s", node="n", presented=key, pinned=key, pinned_source="trusted")
    assert (pinned.source, pinned.recorded) == ("trusted", False)


def test_changed_key_names_node_fingerprints_and_command(tmp_path: Path) -> None:
    old, _ = _keygen(tmp_path, "old")
    new, _ = _keygen(tmp_path, "new")
    with pytest.raises(HostKeyChangedError) as caught:
        decide(stack="lab", node="nas", presented=new, pinned=old)
    message = caught.value.message
    assert "`nas`" in message and old.fingerprint in message and new.fingerprint in message
    assert "kombify nodes trust lab nas" in message and "nothing on the node" in message
    assert caught.value.permanent


def test_a_replaced_simulated_node_is_pinned_anew(tmp_path: Path) -> None:
    old, _ = _keygen(tmp_path, "old")
    new, _ = _keygen(tmp_path, "new")
    pinned = decide(stack="s", node="n", presented=new, pinned=old, same_instance=False)
    assert (pinned.key, pinned.recorded) == (new, True)


def test_a_stated_key_wins_and_must_match(tmp_path: Path) -> None:
    stated, _ = _keygen(tmp_path, "stated")
    other, _ = _keygen(tmp_path, "other")
    pinned = decide(stack="s", node="n", presented=stated, pinned=other, stated=stated)
    assert (pinned.key, pinned.source, pinned.recorded) == (stated, "stated", True)
    with pytest.raises(HostKeyChangedError, match="ssh.hostKey"):
        decide(stack="s", node="n", presented=other, pinned=None, stated=stated)


_KOMBINATION = """\
apiVersion: kombify.io/v1
kind: Kombination
metadata: {{name: lab}}
spec:
  stackkit: base-homelab
  nodes:
    - name: box
      provider: local
      role: main
      address: 192.168.1.10
      ssh: {{user: root, identityFile: ~/.ssh/id_ed25519, hostKey: "{key}"}}
"""


def test_spec_accepts_a_host_key_line(tmp_path: Path) -> None:
    key, _ = _keygen(tmp_path, "k")
    assert validate_text(_KOMBINATION.format(key=key.line + " root@box")) == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("AAAAC3NzaC1lZDI1NTE5", "an OpenSSH public key line"),
        ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
         "not a `ssh-rsa` key"),
    ],
)
def test_spec_refuses_a_bad_host_key(key: str, message: str) -> None:
    problems = validate_text(_KOMBINATION.format(key=key), filename="k.yaml")
    assert [p.path for p in problems] == ["spec.nodes[0].ssh.hostKey"]
    assert message in problems[0].message


# Skipping host key checks is allowed only in KombiSim's own loopback management commands.
_UNVERIFIED = re.compile(
    r"""known_hosts["']?\s*[:=]\s*None|StrictHostKeyChecking=no|UserKnownHostsFile=/dev/null"""
)


def test_no_unverified_ssh_outside_kombisim() -> None:
    package = ROOT / "kombify"
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.relative_to(package).parts[0] != "sim"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _UNVERIFIED.search(line)
    ]
    assert offenders == []


def test_the_source_scan_sees_the_pattern() -> None:
    # The scan would see what main had in kombify/activities/ssh.py, in either spelling.
    assert _UNVERIFIED.search("            known_hosts=None,")
    assert _UNVERIFIED.search('        "known_hosts": None,')
