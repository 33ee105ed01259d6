"""Stock shards: creating them, reading them as one figure per tier, resizing them."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, bindparam, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import lock_rows
from boxoffice.inventory.errors import CapacityBelowSold
from boxoffice.inventory.models import TicketStock
from boxoffice.tickets.models import Ticket


@dataclass(frozen=True, slots=True)
class Stock:
    capacity: int
    sold: int
    held: int
    shards: int = 1

    @property
    def available(self) -> int:
        return self.capacity - self.sold - self.held


EMPTY = Stock(0, 0, 0)
MAX_SHARDS = 64
SEATS_PER_SHARD = 250  # a tier gets one more shard per this many seats, up to AUTO_SHARDS
AUTO_SHARDS = 16


def default_shards(capacity: int) -> int:
    """Shards for a tier nobody chose for: one for a small tier; a big on-sale gets up to
    16, so that buyers commit side by side instead of queueing on one hot row."""
    return max(1, min(AUTO_SHARDS, capacity // SEATS_PER_SHARD))


def add_stock(
    session: AsyncSession, *, ticket_type_id: uuid.UUID, capacity: int, shards: int | None = None
) -> None:
    """The shards of a new tier, their capacities adding up to `capacity`."""
    shards = max(1, min(shards or default_shards(capacity), capacity))
    for shard in range(shards):
        session.add(
            TicketStock(
                ticket_type_id=ticket_type_id,
                shard=shard,
                capacity=capacity // shards + (1 if shard < capacity % shards else 0),
                sold=0,
                held=0,
            )
        )


def seats_left() -> ColumnElement[int]:
    """Σ(capacity - sold - held) over the TicketStock rows of a query: 0 when there are none."""
    return func.coalesce(func.sum(TicketStock.capacity - TicketStock.sold - TicketStock.held), 0)


# Built once: composing the statement cost more CPU than running it (an event page).
_STOCK_BY_TIER = (
    select(
        TicketStock.ticket_type_id,
        func.sum(TicketStock.capacity),
        func.sum(TicketStock.sold),
        func.sum(TicketStock.held),
        func.count(TicketStock.id),
    )
    .where(TicketStock.ticket_type_id.in_(bindparam("ids", expanding=True)))
    .group_by(TicketStock.ticket_type_id)
)


async def stock_by_tier(
    session: AsyncSession, tier_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Stock]:
    """Each tier's capacity, sold, held and shards, summed over its shards."""
    ids = list(tier_ids)
    if not ids:
        return {}
    rows = await session.execute(_STOCK_BY_TIER, {"ids": ids})
    return {tier_id: Stock(*figures) for tier_id, *figures in rows}


async def resize(session: AsyncSession, *, ticket_type_id: uuid.UUID, capacity: int) -> Stock:
    """Set the tier's capacity across its shards; never below what is sold and held.

    Locks the tier's shards (in id order, as holds do) for the rest of the transaction, so
    that no hold slips in between the check and the change.
    """
    shards = await lock_rows(
        session,
        select(TicketStock)
        .where(TicketStock.ticket_type_id == ticket_type_id)
        .order_by(TicketStock.id),
    )
    taken = sum(shard.sold + shard.held for shard in shards)
    if capacity < taken:
        raise CapacityBelowSold(
            f"{taken} seats are sold or held; capacity cannot go below that.",
            sold_and_held=taken,
        )
    change = capacity - sum(shard.capacity for shard in shards)
    if change > 0:  # growth goes to the emptiest shard
        min(shards, key=lambda shard: shard.capacity).capacity += change
    for shard in sorted(shards, key=lambda shard: shard.sold + shard.held - shard.capacity):
        if change >= 0:
            break
        take = min(-change, shard.capacity - shard.sold - shard.held)
        shard.capacity -= take
        change += take
    return Stock(capacity, sum(s.sold for s in shards), sum(s.held for s in shards), len(shards))


async def reshard(session: AsyncSession, *, ticket_type_id: uuid.UUID, shards: int) -> None:
    """Spread the tier's free seats over `shards` shards.

    Shards are never deleted (hold items point at them); shards beyond the wanted number
    keep only what they have sold and held, and the free seats go to the others evenly.
    """
    rows = await lock_rows(
        session,
        select(TicketStock)
        .where(TicketStock.ticket_type_id == ticket_type_id)
        .order_by(TicketStock.id),
    )
    free = sum(row.capacity - row.sold - row.held for row in rows)
    shards = max(1, min(shards, MAX_SHARDS))
    for number in range(len(rows), shards):
        row = TicketStock(ticket_type_id=ticket_type_id, shard=number, capacity=0, sold=0, held=0)
        session.add(row)
        rows.append(row)
    active = sorted(rows, key=lambda row: row.shard)[:shards]
    for row in rows:
        row.capacity = row.sold + row.held
    for index, row in enumerate(active):
        row.capacity += free // shards + (1 if index < free % shards else 0)
    await session.flush()


async def lock_stock(
    session: AsyncSession, ticket_type_ids: Iterable[uuid.UUID]
) -> list[TicketStock]:
    """Lock the tiers' shards for the rest of the transaction, in tier then shard order,
    as holds take them: in plain shard-id order, two tiers' shards interleave, and a
    multi-tier hold could hold one this waits for while waiting for one this holds."""
    return await lock_rows(
        session,
        select(TicketStock)
        .where(TicketStock.ticket_type_id.in_(list(ticket_type_ids)))
        .order_by(TicketStock.ticket_type_id, TicketStock.id),
    )


async def has_sold_or_held(session: AsyncSession, ticket_type_ids: Iterable[uuid.UUID]) -> bool:
    """Seats held now, or ever sold: a ticket issued, even one cancelled since, is a sale."""
    ids = list(ticket_type_ids)
    if not ids:
        return False
    taken = await session.scalar(
        select(func.coalesce(func.sum(TicketStock.sold + TicketStock.held), 0)).where(
            TicketStock.ticket_type_id.in_(ids)
        )
    )
    return bool(taken) or bool(
        await session.scalar(select(exists().where(Ticket.ticket_type_id.in_(ids))))
    )


async def remove_stock(session: AsyncSession, *, ticket_type_id: uuid.UUID) -> None:
    await session.execute(delete(TicketStock).where(TicketStock.ticket_type_id == ticket_type_id))
