from sqlalchemy import func, select

from boxoffice import demo
from boxoffice.accounts.models import User
from boxoffice.audit.models import AuditEntry
from boxoffice.catalog import queries
from boxoffice.catalog.models import Category, Event, EventStatus, TicketType
from boxoffice.catalog.schemas import EventFilters
from boxoffice.db import Database, utcnow
from boxoffice.inventory import audit
from boxoffice.inventory.models import TicketStock

COUNTED = (User, Category, Event, TicketType, TicketStock, AuditEntry)


async def _counts(db: Database) -> dict[str, int]:
    async with db.read_transaction() as session:
        return {
            model.__tablename__: await session.scalar(select(func.count()).select_from(model))
            for model in COUNTED
        }


async def test_loading_the_demo_twice_creates_nothing_new(committing_db: Database) -> None:
    now = utcnow()
    steps: list[str] = []

    created = await demo.load_demo(committing_db, now=now, on_step=steps.append)
    first = await _counts(committing_db)
    again = await demo.load_demo(committing_db, now=now)

    assert created == len(demo.PEOPLE) + len(demo.CATEGORIES) + len(demo.EVENTS)
    assert len(steps) == demo.demo_steps()
    assert again == 0
    assert await _counts(committing_db) == first
    assert first["events"] == len(demo.EVENTS)
    assert first["ticket_stock"] >= first["ticket_types"]  # big tiers get several shards
    async with committing_db.read_transaction() as session:
        assert await audit.check(session) == []


async def test_demo_events_are_found_by_search(committing_db: Database) -> None:
    now = utcnow()
    await demo.load_demo(committing_db, now=now)

    async with committing_db.read_transaction() as session:
        found, total = await queries.search_events(
            session, filters=EventFilters(q="kololo afrobeats"), now=now
        )
        listed, listed_total = await queries.search_events(
            session, filters=EventFilters(limit=100), now=now
        )

    assert [event.title for event in found] == ["Kololo Afrobeats Festival"]
    assert total == 1
    assert listed_total == len(listed)
    assert all(event.status == EventStatus.PUBLISHED for event in listed)
    assert all(event.ends_at > now for event in listed)
    assert 20 <= listed_total < len(demo.EVENTS)  # drafts and past events are not listed


async def test_demo_spans_many_genres_and_cities(committing_db: Database) -> None:
    await demo.load_demo(committing_db)

    async with committing_db.read_transaction() as session:
        genres = set(
            await session.scalars(
                select(Category.slug).join(Event, Event.category_id == Category.id).distinct()
            )
        )
        places = set(await session.execute(select(Event.city, Event.country).distinct()))
        currencies = set(await session.scalars(select(Event.currency).distinct()))
        paused = await session.scalar(select(func.count()).where(Event.on_sale.is_(False)))

    assert genres == {slug for slug, _ in demo.CATEGORIES}
    assert len(places) >= 14
    assert {country for _, country in places} >= {"UG", "KE", "TZ", "RW", "NG", "GH", "SN"}
    assert currencies >= {"UGX", "KES", "TZS", "RWF", "NGN", "GHS", "XOF", "ETB"}
    assert paused == 1
