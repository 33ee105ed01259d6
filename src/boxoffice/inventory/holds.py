"""Taking seats from a tier's shards and giving them back (ARCHITECTURE §5).

Every change is one conditional UPDATE on a `ticket_stock` row; the CHECK constraints are
the last word. Rows are always locked in the same order, tier id then shard id, so that
concurrent transactions queue instead of deadlocking.
"""

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Update, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from boxoffice.inventory.models import Hold, HoldItem, HoldStatus, TicketStock


@dataclass(frozen=True, slots=True)
class Taken:
    """Seats of one tier taken from one shard."""

    ticket_type_id: uuid.UUID
    stock_id: uuid.UUID
    quantity: int


def _free() -> ColumnElement[int]:
    return TicketStock.capacity - TicketStock.sold - TicketStock.held


async def take(
    session: AsyncSession, ticket_type_id: uuid.UUID, quantity: int, *, sell: bool = False
) -> list[Taken] | int:
    """Take `quantity` seats of a tier as held (or, with `sell`, as sold).

    Returns where they came from, or the number of seats the tier has left when that is not
    enough. First one statement on one random shard that has them all (on PostgreSQL
    skipping shards other buyers have locked); if there is none, every shard of the tier is
    locked in order and the seats are gathered from several, so a tier never answers "sold
    out" while it still has the seats somewhere.
    """
    column = TicketStock.sold if sell else TicketStock.held
    dialect = session.get_bind().dialect.name
    statement = _take_statement(dialect, sell)
    params = {"tier": ticket_type_id, "want": quantity}
    if dialect != "postgresql":
        stock_id = await session.scalar(statement, params)
    else:
        # In a savepoint: the SKIP LOCKED pick keeps its lock on a shard it passes over
        # (emptied by another buyer after the statement's snapshot); undone, it lets go
        # before _gather locks every shard in order, else two buyers could deadlock.
        # boxoffice_place_hold() does the same in a subtransaction.
        savepoint = await session.begin_nested()
        stock_id = await session.scalar(statement, params)
        await (savepoint.commit() if stock_id is not None else savepoint.rollback())
    if stock_id is not None:
        return [Taken(ticket_type_id, stock_id, quantity)]
    return await _gather(session, ticket_type_id, quantity, column)


@functools.cache
def _take_statement(dialect: str, sell: bool) -> Update:
    """The one-shard statement of take(), built once per dialect: composing it costs more
    CPU than running it."""
    column = TicketStock.sold if sell else TicketStock.held
    quantity = bindparam("want")
    pick = (
        select(TicketStock.id)
        .where(TicketStock.ticket_type_id == bindparam("tier"), _free() >= quantity)
        .order_by(func.random())
        .limit(1)
    )
    if dialect == "postgresql":  # NO KEY UPDATE: a hold item just inserted (its foreign key
        # share-locks the shard) must not make the shard look taken
        pick = pick.with_for_update(skip_locked=True, key_share=True)
    return (
        update(TicketStock)
        .where(TicketStock.id == pick.scalar_subquery(), _free() >= quantity)
        .values({column: column + quantity})
        .returning(TicketStock.id)
        .execution_options(synchronize_session=False)
    )


async def _gather(
    session: AsyncSession, ticket_type_id: uuid.UUID, quantity: int, column
) -> list[Taken] | int:
    shards = (
        await session.execute(
            select(TicketStock.id, _free())
            .where(TicketStock.ticket_type_id == ticket_type_id)
            .order_by(TicketStock.id)
            .with_for_update(key_share=True)
        )
    ).all()
    left = sum(max(free, 0) for _, free in shards)
    if left < quantity:
        return left
    taken: list[Taken] = []
    wanted = quantity
    for stock_id, free in sorted(shards, key=lambda shard: -shard[1]):
        if wanted == 0:
            break
        part = min(free, wanted)
        await session.execute(
            update(TicketStock)
            .where(TicketStock.id == stock_id, _free() >= part)
            .values({column: column + part})
            .execution_options(synchronize_session=False)
        )
        taken.append(Taken(ticket_type_id, stock_id, part))
        wanted -= part
    return sorted(taken, key=lambda t: t.stock_id)


async def end(
    session: AsyncSession,
    hold_ids: Sequence[uuid.UUID],
    status: HoldStatus,
    *,
    now: datetime,
    overdue_only: bool = False,
    unbooked: bool = False,
) -> list[uuid.UUID]:
    """Move active holds to `status` and their seats with them: back to the shards
    (expired, released) or from held to sold (converted). Returns the holds it moved.

    A hold that is no longer active (or, with `overdue_only`, not yet due; with `unbooked`,
    claimed by a booking) is left alone: whoever moved it first won. The hold rows are
    updated first, then the shards in tier and shard order, so this never deadlocks with a
    hold being placed.
    """
    if not hold_ids:
        return []
    ended = list(
        await session.scalars(
            _end_statement(overdue_only, unbooked),
            {"ids": list(hold_ids), "status": status, "now": now},
        )
    )
    if not ended:
        return []
    per_shard = (await session.execute(_SEATS_PER_SHARD, {"ids": ended})).all()
    give_back = _give_back_statement(status == HoldStatus.CONVERTED)
    for _, stock_id, quantity in per_shard:
        result = await session.execute(give_back, {"stock": stock_id, "quantity": quantity})
        if result.rowcount != 1:  # the invariants make this unreachable; shout if not
            raise RuntimeError(f"shard {stock_id} holds fewer seats than its holds")
    return ended


# The statements of end(), built once: composing them costs more CPU than running them.
@functools.cache
def _end_statement(overdue_only: bool, unbooked: bool) -> Update:
    conditions = [
        Hold.id.in_(bindparam("ids", expanding=True)),
        Hold.status == HoldStatus.ACTIVE,
    ]
    if overdue_only:
        conditions.append(Hold.expires_at <= bindparam("now"))
    if unbooked:
        conditions.append(Hold.booking_id.is_(None))
    return (
        update(Hold)
        .where(*conditions)
        .values(status=bindparam("status", type_=Hold.status.type), ended_at=bindparam("now"))
        .returning(Hold.id)
        .execution_options(synchronize_session=False)
    )


_SEATS_PER_SHARD = (
    select(HoldItem.ticket_type_id, HoldItem.stock_id, func.sum(HoldItem.quantity))
    .where(HoldItem.hold_id.in_(bindparam("ids", expanding=True)))
    .group_by(HoldItem.ticket_type_id, HoldItem.stock_id)
    .order_by(HoldItem.ticket_type_id, HoldItem.stock_id)
)


@functools.cache
def _give_back_statement(sold: bool) -> Update:
    """Held seats of a shard back to free, or on to sold."""
    quantity = bindparam("quantity")
    values = {TicketStock.held: TicketStock.held - quantity}
    if sold:
        values[TicketStock.sold] = TicketStock.sold + quantity
    return (
        update(TicketStock)
        .where(TicketStock.id == bindparam("stock"), TicketStock.held >= quantity)
        .values(values)
        .execution_options(synchronize_session=False)
    )


async def unsell(session: AsyncSession, ticket_type_id: uuid.UUID, quantity: int) -> None:
    """Give back `quantity` sold seats of a tier (cancelled tickets), from any shards."""
    shards = (
        await session.execute(
            select(TicketStock.id, TicketStock.sold)
            .where(TicketStock.ticket_type_id == ticket_type_id)
            .order_by(TicketStock.id)
            .with_for_update(key_share=True)
        )
    ).all()
    wanted = quantity
    for stock_id, sold in shards:
        part = min(sold, wanted)
        if part == 0:
            continue
        await session.execute(
            update(TicketStock)
            .where(TicketStock.id == stock_id, TicketStock.sold >= part)
            .values(sold=TicketStock.sold - part)
            .execution_options(synchronize_session=False)
        )
        wanted -= part
    if wanted:
        raise RuntimeError(f"tier {ticket_type_id}: fewer seats sold than tickets cancelled")


async def overdue(
    session: AsyncSession,
    *,
    now: datetime,
    ticket_type_ids: Sequence[uuid.UUID] | None = None,
    limit: int = 500,
) -> list[uuid.UUID]:
    """Active holds past their expiry (of the given tiers), oldest first."""
    query = select(Hold.id).where(Hold.status == HoldStatus.ACTIVE, Hold.expires_at <= now)
    if ticket_type_ids is not None:
        query = query.where(
            Hold.id.in_(
                select(HoldItem.hold_id).where(HoldItem.ticket_type_id.in_(ticket_type_ids))
            )
        )
    return list(await session.scalars(query.order_by(Hold.expires_at).limit(limit)))
