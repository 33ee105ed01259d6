"""Stock shards: creating them, reading them as one figure per tier, resizing them."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Subquery, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.db import lock_rows
from boxoffice.inventory.errors import CapacityBelowSold
from boxoffice.inventory.models import TicketStock


@dataclass(frozen=True, slots=True)
class Stock:
    capacity: int
    sold: int
    held: int

    @property
    def available(self) -> int:
        return self.capacity - self.sold - self.held


EMPTY = Stock(0, 0, 0)


def add_stock(
    session: AsyncSession, *, ticket_type_id: uuid.UUID, capacity: int, shards: int = 1
) -> None:
    """The shards of a new tier, their capacities adding up to `capacity`."""
    shards = max(1, min(shards, capacity))
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


def stock_totals() -> Subquery:
    """One row per tier: Σ capacity, sold, held and available over its shards."""
    return (
        select(
            TicketStock.ticket_type_id,
            func.sum(TicketStock.capacity).label("capacity"),
            func.sum(TicketStock.sold).label("sold"),
            func.sum(TicketStock.held).label("held"),
            seats_left().label("available"),
        )
        .group_by(TicketStock.ticket_type_id)
        .subquery("stock")
    )


async def stock_by_tier(
    session: AsyncSession, tier_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Stock]:
    ids = list(tier_ids)
    if not ids:
        return {}
    totals = stock_totals()
    rows = await session.execute(
        select(totals.c.ticket_type_id, totals.c.capacity, totals.c.sold, totals.c.held).where(
            totals.c.ticket_type_id.in_(ids)
        )
    )
    return {tier_id: Stock(capacity, sold, held) for tier_id, capacity, sold, held in rows}


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
    return Stock(capacity, sum(s.sold for s in shards), sum(s.held for s in shards))


async def lock_stock(
    session: AsyncSession, ticket_type_ids: Iterable[uuid.UUID]
) -> list[TicketStock]:
    """Lock the tiers' shards for the rest of the transaction, in id order (as holds do)."""
    return await lock_rows(
        session,
        select(TicketStock)
        .where(TicketStock.ticket_type_id.in_(list(ticket_type_ids)))
        .order_by(TicketStock.id),
    )


async def has_sold_or_held(session: AsyncSession, ticket_type_ids: Iterable[uuid.UUID]) -> bool:
    ids = list(ticket_type_ids)
    if not ids:
        return False
    taken = await session.scalar(
        select(func.coalesce(func.sum(TicketStock.sold + TicketStock.held), 0)).where(
            TicketStock.ticket_type_id.in_(ids)
        )
    )
    return bool(taken)


async def remove_stock(session: AsyncSession, *, ticket_type_id: uuid.UUID) -> None:
    await session.execute(delete(TicketStock).where(TicketStock.ticket_type_id == ticket_type_id))
