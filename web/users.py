"""People who sign in to the web app: passwords, the demo's passwords, and sign-in checks.

`app.py` calls `set_password` and `set_demo_passwords` for the `coachloop user` commands; the
sign-in page calls `authenticate`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from store.db import session_scope
from store.models import Access, Credential, Person, TeamManager
from web.passwords import burn_time, check_strength, hash_password, verify_password

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "harbor-demo"
"""The password `coachloop user demo-passwords` gives the demo's people (documented in the
README); only ever for people who have none yet."""


class UserError(Exception):
    """A person or password that cannot be used; the message says what to do."""


def find_person(session: Session, login: str) -> Person | None:
    """A person by external id, or by e-mail ignoring case."""
    login = login.strip()
    if not login:
        return None
    person = session.exec(select(Person).where(Person.external_id == login)).first()
    if person is not None:
        return person
    return session.exec(
        select(Person)
        .where(func.lower(col(Person.email)) == login.lower())
        .order_by(col(Person.id))
    ).first()


def set_password(engine: Engine, login: str, password: str, *, now: datetime) -> Person:
    """Give a person (external id or e-mail) a new password; ends their signed-in sessions.

    Raises:
        UserError: No such person, or the password is too weak.
    """
    try:
        check_strength(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    with session_scope(engine) as session:
        person = find_person(session, login)
        if person is None or person.id is None:
            raise UserError(
                f"No person `{login}`; use an external id or e-mail from `coachloop org show`"
            )
        credential = session.get(Credential, person.id) or Credential(
            person_id=person.id, password_hash=""
        )
        credential.password_hash = hash_password(password)
        credential.failed_attempts = 0
        credential.locked_until = None
        credential.updated_at = now
        session.add(credential)
    logger.info("password set", extra={"person_id": person.id})
    return person


def set_demo_passwords(
    engine: Engine, *, password: str = DEMO_PASSWORD, now: datetime
) -> list[Person]:
    """Give every active person without a password the demo password, so the demo
    organisation can sign in; people who have a password keep it. Returns those changed."""
    with Session(engine) as session:
        people = session.exec(
            select(Person)
            .where(col(Person.active).is_(True))
            .where(col(Person.id).not_in(select(Credential.person_id)))
            .order_by(col(Person.access), col(Person.external_id))
        ).all()
    stored = hash_password(password)  # one hash for all: the password is public anyway
    with session_scope(engine) as session:
        for person in people:
            assert person.id is not None
            session.add(Credential(person_id=person.id, password_hash=stored, updated_at=now))
    logger.info("demo passwords set", extra={"people": len(people)})
    return list(people)


def demo_sign_ins(engine: Engine, *, password: str = DEMO_PASSWORD) -> dict[str, Person]:
    """Who to try the demo as: the manager of the most teams, an admin and a rep, each only
    if their password is still `password`. Keyed by `manager`, `admin`, `rep`."""
    with Session(engine) as session:
        teams = func.count(col(TeamManager.team_id))
        managers = session.exec(
            select(Person)
            .join(TeamManager, col(TeamManager.person_id) == col(Person.id))
            .where(col(Person.active).is_(True))
            .group_by(col(Person.id))
            .order_by(teams.desc(), col(Person.external_id))
            .limit(5)
        ).all()
        candidates: dict[str, list[Person]] = {"manager": list(managers)}
        for access in (Access.admin, Access.rep):
            candidates[access.value] = list(
                session.exec(
                    select(Person)
                    .where(Person.access == access, col(Person.active).is_(True))
                    .where(col(Person.team_id).is_not(None) | (Person.access == Access.admin))
                    .order_by(col(Person.external_id))
                    .limit(5)
                ).all()
            )
        found: dict[str, Person] = {}
        for kind, people in candidates.items():
            for person in people:
                credential = session.get(Credential, person.id)
                if credential and verify_password(password, credential.password_hash):
                    found[kind] = person
                    break
    return found


@dataclass(frozen=True, slots=True)
class SignIn:
    person: Person | None
    password_hash: str | None = None
    problem: str | None = None
    """What to tell the person when sign-in failed; never says which half was wrong."""


_WRONG = "That name and password do not match; check both and try again"


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def authenticate(
    engine: Engine,
    login: str,
    password: str,
    *,
    now: datetime,
    max_failures: int,
    lockout: timedelta,
) -> SignIn:
    """Check a name and password; count failures and lock the account after too many."""
    with session_scope(engine) as session:
        person = find_person(session, login)
        credential = session.get(Credential, person.id) if person and person.id else None
        if person is None or credential is None or not person.active:
            burn_time(password)
            logger.info("sign-in refused", extra={"reason": "unknown or no password"})
            return SignIn(None, problem=_WRONG)
        locked_until = _aware(credential.locked_until)
        if locked_until is not None and locked_until > now:
            burn_time(password)
            minutes = max(1, round((locked_until - now).total_seconds() / 60))
            logger.info("sign-in refused", extra={"reason": "locked", "person_id": person.id})
            return SignIn(
                None,
                problem=f"Too many failed attempts; try again in {minutes} minutes or ask an "
                "admin to set a new password",
            )
        if not verify_password(password, credential.password_hash):
            credential.failed_attempts += 1
            if credential.failed_attempts >= max_failures:
                credential.locked_until = now + lockout
                credential.failed_attempts = 0
            session.add(credential)
            logger.info("sign-in refused", extra={"reason": "password", "person_id": person.id})
            return SignIn(None, problem=_WRONG)
        if credential.failed_attempts or credential.locked_until is not None:
            credential.failed_attempts = 0
            credential.locked_until = None
            session.add(credential)
        logger.info("signed in", extra={"person_id": person.id})
        return SignIn(person, password_hash=credential.password_hash)


def people_with_passwords(engine: Engine) -> set[int]:
    with Session(engine) as session:
        return {int(i) for i in session.exec(select(Credential.person_id)).all()}
