"""kombify.names: the one rule for names, and paths built from them that stay in their root."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from kombify.names import InvalidName, check_deployment_id, check_name, contained
from kombify.settings import get_settings
from kombify.unifier.plan import write_plan


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "../..", "/etc", "a/b", "%2e%2e", "-a", "a-", "A", "a_b", "lab\n",
            "läb", "a" * 64, "a\x00b"],
)
def test_bad_names_are_refused_with_what_was_expected(bad: str) -> None:
    with pytest.raises(InvalidName, match="expected a DNS label"):
        check_name(bad, what="stack name")


@pytest.mark.parametrize("good", ["a", "lab", "home-lab-2", "0", "a" * 63])
def test_dns_labels_pass(good: str) -> None:
    assert check_name(good) == good


def test_message_is_bounded_and_printable() -> None:
    with pytest.raises(InvalidName) as caught:
        check_name("\x1b[31m" + "x" * 10_000)
    assert len(caught.value.message) < 250
    assert "\x1b" not in caught.value.message


def test_deployment_ids_are_32_hex_digits() -> None:
    assert check_deployment_id("0123456789abcdef" * 2)
    for bad in ("../stacks/x/destroy?x=", "0" * 31, "G" * 32):
        with pytest.raises(InvalidName, match="32 hexadecimal digits"):
            check_deployment_id(bad)


def test_contained_refuses_what_leads_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert contained(root, "a", "b") == root.resolve() / "a" / "b"
    with pytest.raises(InvalidName):
        contained(root, "..")
    (root / "link").symlink_to(tmp_path)  # planted link: a name, but it leads out
    with pytest.raises(InvalidName, match="leads outside"):
        contained(root, "link", "x")


def test_home_is_private_and_tightened(kombify_home: Path) -> None:
    kombify_home.mkdir(mode=0o755)
    kombify_home.chmod(0o755)
    get_settings()
    assert stat.S_IMODE(kombify_home.stat().st_mode) == 0o700


def test_plan_files_are_owner_only(tmp_path: Path) -> None:
    from kombify.specs import load_kombination
    from kombify.unifier import unify
    from tests.support.kombinations import one_node

    plan = unify(load_kombination(one_node("modes")))
    written = write_plan(plan, tmp_path / "work")

    assert written
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
