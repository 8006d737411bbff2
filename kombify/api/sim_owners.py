"""Which organisation a simulation belongs to, so that no other sees or touches it.

Simulations live on the installation's one Docker engine, named by their name alone (their
containers, networks and volumes carry it), so a name is unique on the installation. Who owns
one is recorded in the ``simulation`` table when it is made through the API; a stack's own
simulation (named after the stack) belongs to the stack's organisation. Simulations that
nobody claimed (made before accounts, or by ``kombify sim`` on the engine directly) belong to
the default organisation, the single-user installation's.
"""

from __future__ import annotations

from sqlmodel import Session, select

from kombify.db.models import Organisation, Simulation, Stack
from kombify.db.stacks import LOCAL_ORG
from kombify.errors import ConflictError, NotFoundError


def owner_of(db: Session, name: str) -> str | None:
    """The id of the organisation that owns simulation ``name`` (None: nobody claimed it)."""
    row = db.exec(select(Simulation).where(Simulation.name == name)).first()
    if row is not None and row.organisation_id is not None:
        return row.organisation_id
    stack = db.exec(select(Stack).where(Stack.name == name)).first()
    return stack.organisation_id if stack is not None else None


def visible(db: Session, org: Organisation, name: str) -> bool:
    """Whether ``org`` may see and act on simulation ``name``."""
    owner = owner_of(db, name)
    if owner is None:
        return org.slug == LOCAL_ORG
    return owner == org.id


def check_visible(db: Session, org: Organisation, name: str) -> None:
    """NotFoundError (as for a missing one) unless ``org`` may see simulation ``name``."""
    if not visible(db, org, name):
        raise NotFoundError(f"no simulation `{name}`")


def claim(db: Session, org: Organisation, name: str) -> None:
    """Record ``org`` as the owner of a simulation it is about to make.

    Raises:
        ConflictError: The name belongs to another organisation (names are unique on the
            installation: they name containers on its one engine).
    """
    owner = owner_of(db, name)
    if owner is not None and owner != org.id:
        raise ConflictError(f"name: `{name}` is taken on this installation; choose another")
    row = db.exec(select(Simulation).where(Simulation.name == name)).first()
    if row is None:
        db.add(Simulation(name=name, organisation_id=org.id))
    elif row.organisation_id is None:
        row.organisation_id = org.id
        db.add(row)
    db.commit()


def release(db: Session, name: str) -> None:
    """Forget who owned a simulation that was deleted."""
    row = db.exec(select(Simulation).where(Simulation.name == name)).first()
    if row is not None:
        db.delete(row)
        db.commit()
