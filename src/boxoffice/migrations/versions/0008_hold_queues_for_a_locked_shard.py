"""holds: queue for a locked shard instead of gathering; the limit check off the expiry index

boxoffice_place_hold() again (migration 0006), with two changes measured under a stampede
(128 clients, 2 web processes, one tier of 16 shards):

* When every shard that has the seats is locked by another buyer, a hold now waits for one
  of them, chosen at random, instead of locking the whole tier in order and gathering. With
  more buyers in flight than shards, one gather made every buyer behind it find all the
  shards locked and gather too: three holds in four took that path, and the rate fell
  from ~1,000 to ~650 holds/s. The gather stays for a tier whose seats are spread thin.
* The fan's per-event limit reads the fan's live holds through ix_holds_active_user_id_event_id.
  With `expires_at > now` in its WHERE, it could also use ix_holds_active_expires_at, and with
  the statistics of a table that had few live holds (as at the start of every sale) the
  planner took that one and read every live hold of every fan: 1.5 ms a hold at 8,000 live
  holds, and growing. The expiry test moves into a FILTER, and on PostgreSQL the expiry
  index is rebuilt with `expires_at IS NOT NULL` in its predicate (always true: the column
  is NOT NULL), which only a query that bounds expires_at implies; the limit check no
  longer does. (SQLite 3.40 would not use the index for the sweep with that predicate, and
  takes the fan's own index for the limit anyway: its index stays as it was.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 05:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Bounded expiry only: see the module's docstring.
EXPIRY = sa.text("status = 'active' AND expires_at IS NOT NULL")
ACTIVE = sa.text("status = 'active'")

PLACE_HOLD = r"""
CREATE OR REPLACE FUNCTION boxoffice_place_hold(
    p_hold_id uuid,
    p_user_id uuid,
    p_session_id uuid,  -- with p_token_id: check the caller's session first (NULL: checked)
    p_token_id uuid,
    p_event_id uuid,
    p_tiers uuid[],
    p_quantities integer[],
    p_now timestamptz,
    p_expires_at timestamptz
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_status text;
    v_on_sale boolean;
    v_starts_at timestamptz;
    v_sales_start timestamptz;
    v_sales_end timestamptz;
    v_currency text;
    v_per_user integer;
    v_found uuid[];
    v_names text[];
    v_prices integer[];
    v_per_order integer[];
    v_starts timestamptz[];
    v_ends timestamptz[];
    v_order integer[];  -- positions of the tiers in id order
    v_i integer;
    v_quantity integer := 0;
    v_total integer := 0;
    v_already integer;
    v_stock uuid;
    v_left integer;
    v_wanted integer;
    v_part integer;
    v_shards uuid[];
    v_free integer[];
    v_j integer;
    v_item_ids uuid[] := '{}';
    v_item_tiers uuid[] := '{}';
    v_item_stocks uuid[] := '{}';
    v_item_quantities integer[] := '{}';
    v_item_prices integer[] := '{}';
BEGIN
    -- The fan's row is locked first, for the whole hold: it queues the fan's concurrent
    -- holds (so that both cannot pass the limit), and NO KEY UPDATE lets a ticket being
    -- issued to them (its foreign key) through.
    PERFORM 1 FROM users u
    WHERE u.id = p_user_id
      AND (p_session_id IS NULL OR u.deleted_at IS NULL AND EXISTS (
          SELECT 1 FROM auth_sessions s
          WHERE s.id = p_session_id AND s.user_id = u.id AND s.revoked_at IS NULL
      ) AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = p_token_id))
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'BX401', MESSAGE = 'unauthenticated', DETAIL = '{}';
    END IF;

    SELECT e.status, e.on_sale, e.starts_at, e.sales_start, e.sales_end, e.currency,
           e.max_tickets_per_user
    INTO v_status, v_on_sale, v_starts_at, v_sales_start, v_sales_end, v_currency, v_per_user
    FROM events e WHERE e.id = p_event_id;
    IF NOT FOUND OR v_status <> 'published' THEN
        RAISE EXCEPTION USING ERRCODE = 'BX404', MESSAGE = 'event_not_found', DETAIL = '{}';
    END IF;
    -- The asked tiers in the order asked; a NULL id where the event has no such tier.
    SELECT array_agg(t.id ORDER BY w.n), array_agg(t.name ORDER BY w.n),
           array_agg(t.price_cents ORDER BY w.n), array_agg(t.max_per_order ORDER BY w.n),
           array_agg(coalesce(t.sales_start, v_sales_start) ORDER BY w.n),
           array_agg(least(coalesce(t.sales_end, v_sales_end, v_starts_at), v_starts_at)
                     ORDER BY w.n),
           array_agg(w.n::integer ORDER BY w.id)
    INTO v_found, v_names, v_prices, v_per_order, v_starts, v_ends, v_order
    FROM unnest(p_tiers) WITH ORDINALITY AS w(id, n)
    LEFT JOIN ticket_types t ON t.id = w.id AND t.event_id = p_event_id;
    FOR v_i IN 1 .. cardinality(p_tiers) LOOP
        IF v_found[v_i] IS NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'BX404', MESSAGE = 'ticket_type_not_found',
                DETAIL = jsonb_build_object('ticket_type_id', p_tiers[v_i]);
        END IF;
    END LOOP;
    -- When several refusals apply, the first of: not on sale, over a limit, sold out.
    FOREACH v_i IN ARRAY v_order LOOP
        IF NOT v_on_sale OR p_now < v_starts[v_i] OR p_now >= v_ends[v_i] THEN
            RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'not_on_sale',
                DETAIL = jsonb_build_object('ticket_type_id', p_tiers[v_i], 'name', v_names[v_i]);
        END IF;
    END LOOP;
    FOREACH v_i IN ARRAY v_order LOOP
        IF p_quantities[v_i] > v_per_order[v_i] THEN
            RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'ticket_limit_exceeded',
                DETAIL = jsonb_build_object('ticket_type_id', p_tiers[v_i],
                                            'name', v_names[v_i], 'limit', v_per_order[v_i]);
        END IF;
        v_quantity := v_quantity + p_quantities[v_i];
        v_total := v_total + p_quantities[v_i] * v_prices[v_i];
    END LOOP;

    -- A statement of its own after the lock, so that it sees what the lock's previous
    -- owner committed.
    SELECT (
        -- The expiry test in FILTER, not WHERE: so the fan's own holds are read through
        -- ix_holds_active_user_id_event_id, never the expiry index (see migration 0008).
        SELECT coalesce(sum(h.quantity) FILTER (WHERE h.expires_at > p_now), 0) FROM holds h
        WHERE h.user_id = p_user_id AND h.event_id = p_event_id AND h.status = 'active'
    ) + (
        SELECT count(*) FROM tickets k
        WHERE k.user_id = p_user_id AND k.event_id = p_event_id AND k.status IN ('valid', 'used')
    ) INTO v_already;
    IF v_already + v_quantity > v_per_user THEN
        RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'ticket_limit_exceeded',
            DETAIL = jsonb_build_object('limit', v_per_user, 'held_or_bought', v_already);
    END IF;

    -- The seats, tier by tier in id order: one random shard that has them all, skipping
    -- shards other buyers have locked; else, when every such shard is locked, one of
    -- them waited for; else every shard of the tier locked in order and the seats
    -- gathered from several, so "sold out" is only said when it is true.
    FOREACH v_i IN ARRAY v_order LOOP
        -- In a subtransaction: a shard that another buyer emptied after this statement's
        -- snapshot stays locked by the pick even though it is passed over; undone, the
        -- pick lets go of it before the gather locks every shard in order (else two
        -- buyers could each hold a shard the other waits for).
        BEGIN
            UPDATE ticket_stock SET held = held + p_quantities[v_i]
            WHERE id = (
                SELECT s.id FROM ticket_stock s
                WHERE s.ticket_type_id = p_tiers[v_i]
                  AND s.capacity - s.sold - s.held >= p_quantities[v_i]
                ORDER BY random() LIMIT 1
                FOR NO KEY UPDATE SKIP LOCKED
            ) AND capacity - sold - held >= p_quantities[v_i]
            RETURNING id INTO v_stock;
            IF v_stock IS NULL THEN
                RAISE EXCEPTION USING ERRCODE = 'BX000';
            END IF;
        EXCEPTION WHEN SQLSTATE 'BX000' THEN
            v_stock := NULL;
        END;
        -- Every shard that has the seats is locked by another buyer (more buyers at once
        -- than shards): queue for one of them, holding no other lock of this tier, rather
        -- than gather. A gather locks every shard of the tier, so every buyer behind it
        -- found them all locked and gathered in turn: three holds in four did under 128
        -- clients, each waiting for the whole tier. In a subtransaction again: a shard
        -- emptied while this waited stays locked by the update that then passes it over.
        IF v_stock IS NULL THEN
            BEGIN
                UPDATE ticket_stock SET held = held + p_quantities[v_i]
                WHERE id = (
                    SELECT s.id FROM ticket_stock s
                    WHERE s.ticket_type_id = p_tiers[v_i]
                      AND s.capacity - s.sold - s.held >= p_quantities[v_i]
                    ORDER BY random() LIMIT 1
                ) AND capacity - sold - held >= p_quantities[v_i]
                RETURNING id INTO v_stock;
                IF v_stock IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'BX000';
                END IF;
            EXCEPTION WHEN SQLSTATE 'BX000' THEN
                v_stock := NULL;
            END;
        END IF;
        IF v_stock IS NOT NULL THEN
            v_item_ids := v_item_ids || gen_random_uuid();
            v_item_tiers := v_item_tiers || p_tiers[v_i];
            v_item_stocks := v_item_stocks || v_stock;
            v_item_quantities := v_item_quantities || p_quantities[v_i];
            v_item_prices := v_item_prices || v_prices[v_i];
            CONTINUE;
        END IF;
        -- Exactly the rows locked here are the ones taken from, fullest first.
        SELECT coalesce(sum(greatest(free, 0)), 0),
               coalesce(array_agg(id ORDER BY free DESC, id) FILTER (WHERE free > 0), '{}'),
               coalesce(array_agg(free ORDER BY free DESC, id) FILTER (WHERE free > 0), '{}')
        INTO v_left, v_shards, v_free
        FROM (
            SELECT s.id, s.capacity - s.sold - s.held AS free FROM ticket_stock s
            WHERE s.ticket_type_id = p_tiers[v_i] ORDER BY s.id FOR NO KEY UPDATE
        ) AS locked;
        IF v_left < p_quantities[v_i] THEN
            RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'sold_out',
                DETAIL = jsonb_build_object('ticket_type_id', p_tiers[v_i], 'available', v_left);
        END IF;
        v_wanted := p_quantities[v_i];
        FOR v_j IN 1 .. cardinality(v_shards) LOOP
            EXIT WHEN v_wanted = 0;
            v_part := least(v_free[v_j], v_wanted);
            UPDATE ticket_stock SET held = held + v_part
            WHERE id = v_shards[v_j] AND capacity - sold - held >= v_part;
            IF NOT FOUND THEN  -- locked above, so unreachable; never take less than asked
                RAISE EXCEPTION 'shard % changed under its lock', v_shards[v_j];
            END IF;
            v_item_ids := v_item_ids || gen_random_uuid();
            v_item_tiers := v_item_tiers || p_tiers[v_i];
            v_item_stocks := v_item_stocks || v_shards[v_j];
            v_item_quantities := v_item_quantities || v_part;
            v_item_prices := v_item_prices || v_prices[v_i];
            v_wanted := v_wanted - v_part;
        END LOOP;
    END LOOP;

    INSERT INTO holds (
        id, user_id, event_id, status, quantity, total_cents, currency, expires_at, created_at
    ) VALUES (
        p_hold_id, p_user_id, p_event_id, 'active', v_quantity, v_total, v_currency,
        p_expires_at, p_now
    );
    INSERT INTO hold_items (id, hold_id, ticket_type_id, stock_id, quantity, unit_price_cents)
    SELECT i.id, p_hold_id, i.tier, i.stock, i.quantity, i.price
    FROM unnest(v_item_ids, v_item_tiers, v_item_stocks, v_item_quantities, v_item_prices)
        AS i(id, tier, stock, quantity, price);
    RETURN json_build_object(
        'quantity', v_quantity,
        'total_cents', v_total,
        'currency', v_currency,
        'names', json_object(p_tiers::text[], v_names),
        'items', json_build_array(
            v_item_ids, v_item_tiers, v_item_stocks, v_item_quantities, v_item_prices
        )
    )::text;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _expiry_index(EXPIRY)
        op.execute(PLACE_HOLD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _expiry_index(ACTIVE)
        op.execute(_revision_0006().PLACE_HOLD)


def _expiry_index(predicate: sa.TextClause) -> None:
    op.drop_index("ix_holds_active_expires_at", table_name="holds")
    op.create_index(
        "ix_holds_active_expires_at", "holds", ["expires_at"], postgresql_where=predicate
    )


def _revision_0006() -> ModuleType:
    """Migration 0006's module, whose function the downgrade puts back."""
    path = Path(__file__).with_name("0006_hold_in_one_round_trip.py")
    spec = importlib.util.spec_from_file_location("boxoffice_migration_0006", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
