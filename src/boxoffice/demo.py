"""Demo data for the embedded site: people to sign in as. Loading twice changes nothing."""

from collections.abc import Callable
from dataclasses import dataclass

from boxoffice.accounts import passwords
from boxoffice.accounts import service as accounts
from boxoffice.accounts.models import Role, User
from boxoffice.db import Database, utcnow

DEMO_PASSWORD = "boxoffice-demo"  # noqa: S105 (demo data only, printed by `make run`)


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    role: Role
    phone: str | None = None
    genres: tuple[str, ...] = ()


PEOPLE = (
    DemoPerson("admin@boxoffice.local", "Ada Admin", Role.ADMIN),
    DemoPerson(
        "kampala.live@boxoffice.local", "Kampala Live Promotions", Role.ORGANIZER, "+256772100200"
    ),
    DemoPerson("nairobi.sounds@boxoffice.local", "Nairobi Sounds", Role.ORGANIZER, "+254708100200"),
    DemoPerson(
        "lagos.groove@boxoffice.local", "Lagos Groove Collective", Role.ORGANIZER, "+2348031002000"
    ),
    DemoPerson("accra.stages@boxoffice.local", "Accra Stages", Role.ORGANIZER, "+233241002000"),
    DemoPerson(
        "fan@boxoffice.local", "Faith Fan", Role.ATTENDEE, "+256772123456", ("afrobeats", "jazz")
    ),
    DemoPerson(
        "wanjiku@boxoffice.local", "Wanjiku Kamau", Role.ATTENDEE, "+254708374149", ("gengetone",)
    ),
    DemoPerson(
        "kwame@boxoffice.local", "Kwame Mensah", Role.ATTENDEE, "+233241234567", ("highlife",)
    ),
)


async def load_demo(db: Database, *, on_step: Callable[[str], None] | None = None) -> int:
    """Create the demo accounts that are missing; the number created."""
    created = 0
    password_hash = await passwords.hash_password(DEMO_PASSWORD)
    for person in PEOPLE:
        async with db.transaction() as session:
            if await accounts.find_user_by_email(session, person.email) is None:
                now = utcnow()
                session.add(
                    User(
                        email=person.email,
                        name=person.name,
                        role=person.role,
                        phone=person.phone,
                        password_hash=password_hash,
                        preferred_genres=list(person.genres),
                        preferred_artists=[],
                        created_at=now,
                        updated_at=now,
                    )
                )
                created += 1
        if on_step:
            on_step(person.email)
    return created


def demo_steps() -> int:
    return len(PEOPLE)
