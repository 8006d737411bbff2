"""Property-based requests from the OpenAPI document, as a member of an organisation.

schemathesis generates requests for every operation (valid and invalid input) and checks each
answer: never a server error, and always what the document declares (status code and body).
SQLite only: the point is the API's answers, and the run must stay short.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from kombify.accounts import sessions, users
from kombify.api.principal import timeouts
from kombify.db.stacks import LOCAL_ORG
from tests.support.accounts import Installation, installation
from tests.support.openapi_walk import kombination
from tests.support.ports import free_port

MEMBER = "member@acme.example.org"
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@dataclass
class Api:
    """The installation under test and the member everything is asked as."""

    inst: Installation
    user_id: str
    calls: int = 0

    def token(self) -> str:
        """A fresh session of the member: a case that signs out or revokes sessions (as it may)
        takes only its own session with it."""
        self.calls += 1
        with self.inst.db() as db:
            return sessions.start(
                db, user_id=self.user_id, timeouts=timeouts(self.inst.settings)
            ).token


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    home = tmp_path_factory.mktemp("schemathesis")
    with pytest.MonkeyPatch.context() as patch:
        # Nothing answers at Docker's address (nor at Temporal's, see `installation`): the
        # routes that would start real work are excluded below, and every other one must
        # answer without either.
        patch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")
        with installation(home, f"sqlite:///{home / 'kombify.db'}") as inst:
            inst.add_user(MEMBER, "acme", "member")
            made = inst.bearer(MEMBER).post("/v1/stacks", json={"source": kombination("lab")})
            assert made.status_code == 201, made.text
            with inst.db() as db:
                user = users.by_email(db, MEMBER)
                assert user is not None
            assert inst.org("acme").slug != LOCAL_ORG
            yield Api(inst=inst, user_id=user.id)


# These start real work on the Docker engine or through Temporal (covered by the e2e tests
# against both); with neither answering here, they answer 502/503 by design.
EXCLUDED = {
    "GET /readyz",  # 503 while Temporal is down: that is its job
    "GET /v1/simulations",  # lists the engine's containers
    "POST /v1/simulations",  # creates containers
    "POST /v1/simulation-runs",  # starts the RunSimulation workflow
    "POST /v1/workflow-runs",  # starts RunUserWorkflow (bad files: tests/integration)
    "GET /v1/workflow-runs",  # lists RunUserWorkflow executions in Temporal
    "GET /v1/workflow-runs/{run_id}",  # asks Temporal (another org's id: tenant tests)
}
# Path values that exist, beside the generated ones, so real objects' answers are checked too
# (organisation routes read only the database).
KNOWN = {"org": "acme"}
EXAMPLES = 20


def _strategy(operation: APIOperation) -> st.SearchStrategy[schemathesis.Case]:
    strategies = [operation.as_strategy(mode) for mode in GenerationMode]
    known = {name: value for name, value in KNOWN.items() if f"{{{name}}}" in operation.path}
    if known:  # parameters not fixed here are generated
        strategies.append(operation.as_strategy(path_parameters=known))
    return st.one_of(strategies)


def _failure(api: Api, operation: APIOperation) -> str | None:
    @given(case=_strategy(operation))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {api.token()}"}, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # every failing operation is listed
        return f"{operation.method.upper()} {operation.path}:\n{exc}"
    return None


def test_every_answer_is_declared_and_none_is_a_server_error(api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.inst.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    names = {f"{op.method.upper()} {op.path}" for op in operations}
    assert EXCLUDED <= names  # the exclusions cannot rot

    failures = [
        found
        for op in operations
        if f"{op.method.upper()} {op.path}" not in EXCLUDED
        and (found := _failure(api, op)) is not None
    ]

    assert not failures, "\n\n".join(failures)
    walked = len(operations) - len(EXCLUDED)
    assert walked >= 50
    assert api.calls >= 5 * walked  # requests were made, not only planned
