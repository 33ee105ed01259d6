"""Checks the selling invariants on a live database and reports every drift.

On every shard: 0 ≤ held, 0 ≤ sold, sold + held ≤ capacity, and held equals the seats of
the active holds taken from it. On every tier: Σ shard capacity equals the tier's capacity,
and Σ sold equals its valid and used tickets.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.catalog.models import TicketType
from boxoffice.inventory.models import Hold, HoldItem, HoldStatus, TicketStock
from boxoffice.tickets.models import Ticket, TicketStatus


@dataclass(frozen=True, slots=True)
class Drift:
    ticket_type_id: uuid.UUID
    stock_id: uuid.UUID | None  # None: the tier as a whole
    problem: str

    def __str__(self) -> str:
        where = f"shard {self.stock_id}" if self.stock_id else "tier"
        return f"ticket type {self.ticket_type_id}, {where}: {self.problem}"


async def check(session: AsyncSession) -> list[Drift]:
    drifts: list[Drift] = []
    held_by_holds = (
        select(HoldItem.stock_id, func.sum(HoldItem.quantity).label("held"))
        .join(Hold, Hold.id == HoldItem.hold_id)
        .where(Hold.status == HoldStatus.ACTIVE)
        .group_by(HoldItem.stock_id)
        .subquery()
    )
    shards = await session.execute(
        select(
            TicketStock.ticket_type_id,
            TicketStock.id,
            TicketStock.capacity,
            TicketStock.sold,
            TicketStock.held,
            func.coalesce(held_by_holds.c.held, 0),
        ).outerjoin(held_by_holds, held_by_holds.c.stock_id == TicketStock.id)
    )
    for tier_id, stock_id, capacity, sold, held, in_holds in shards:
        if sold < 0 or held < 0 or sold + held > capacity:
            drifts.append(
                Drift(tier_id, stock_id, f"capacity {capacity}, sold {sold}, held {held}")
            )
        if held != in_holds:
            drifts.append(Drift(tier_id, stock_id, f"held {held}, active holds {in_holds}"))

    stock = (
        select(
            TicketStock.ticket_type_id,
            func.sum(TicketStock.capacity).label("capacity"),
            func.sum(TicketStock.sold).label("sold"),
        )
        .group_by(TicketStock.ticket_type_id)
        .subquery()
    )
    issued = (
        select(Ticket.ticket_type_id, func.count(Ticket.id).label("tickets"))
        .where(Ticket.status.in_([TicketStatus.VALID, TicketStatus.USED]))
        .group_by(Ticket.ticket_type_id)
        .subquery()
    )
    tiers = await session.execute(
        select(
            TicketType.id,
            TicketType.capacity,
            func.coalesce(stock.c.capacity, 0),
            func.coalesce(stock.c.sold, 0),
            func.coalesce(issued.c.tickets, 0),
        )
        .outerjoin(stock, stock.c.ticket_type_id == TicketType.id)
        .outerjoin(issued, issued.c.ticket_type_id == TicketType.id)
    )
    for tier_id, capacity, shard_capacity, sold, tickets in tiers:
        if capacity != shard_capacity:
            drifts.append(
                Drift(tier_id, None, f"capacity {capacity}, shards add up to {shard_capacity}")
            )
        if sold != tickets:
            drifts.append(Drift(tier_id, None, f"sold {sold}, valid tickets {tickets}"))
    return drifts
