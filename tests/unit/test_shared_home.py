"""Several workers on one KOMBIFY_HOME make its one-off files once: the CA, the control
plane's client certificate, a simulation's key pair.

Each test releases 8 threads at once on a fresh home, 10 rounds: before the fix, two makers
each made their own files, and ``ca.key`` could end up from one and ``ca.crt`` from the
other (or a reader saw only one of them and refused "half a CA").
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from kombify.activities.agent import AgentActivities
from kombify.activities.deploy import DeployActivities
from kombify.pki import load_or_create_ca
from kombify.pki.certs import load_cert
from kombify.settings import Settings, get_settings
from kombify.sim.keys import ensure_keys
from tests.support.concurrency import at_once

ROUNDS = 10
MAKERS = 8


def _public(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_workers_starting_together_make_one_ca(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        pki = tmp_path / str(round_) / "pki"

        cas = at_once(MAKERS, partial(load_or_create_ca, pki))

        assert len({ca.cert_pem for ca in cas}) == 1, f"round {round_}: several CAs made"
        assert (pki / "ca.crt").read_bytes() == cas[0].cert_pem
        on_disk = load_or_create_ca(pki)
        assert _public((pki / "ca.key").read_bytes()) == _public(
            on_disk.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        assert on_disk.cert.public_key() == on_disk.key.public_key()


def test_workers_issue_one_control_certificate_whose_key_matches(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        settings = Settings(home=tmp_path / str(round_))
        activities = AgentActivities(settings, DeployActivities(settings))

        issued = at_once(MAKERS, activities.control_cert)

        assert len({i.cert_pem for i in issued}) == 1, f"round {round_}: several certificates"
        crt, key = settings.home / "pki" / "control.crt", settings.home / "pki" / "control.key"
        cert = load_cert(crt.read_bytes())
        assert cert.public_bytes(serialization.Encoding.PEM) == issued[0].cert_pem
        assert _public(key.read_bytes()) == cert.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.mark.usefixtures("kombify_home")
def test_one_key_pair_per_simulation_when_made_at_once() -> None:
    for round_ in range(ROUNDS):
        name = f"keys-{round_}"

        made = at_once(MAKERS, partial(ensure_keys, name))

        assert len({k.public_key for k in made}) == 1, f"round {round_}: several key pairs"
        private = serialization.load_ssh_private_key(made[0].private_key.read_bytes(), None)
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        assert made[0].public_key.startswith(public.decode())
        assert get_settings().home in made[0].private_key.parents
