"""bookings: boxoffice_book_free(), a free booking in one round trip on PostgreSQL

What orders.service.book does for a hold that costs nothing (claim the hold, write the
booking and its payment, move the seats from held to sold, issue the tickets, record the
purchase, queue the confirmation), as one function: a free booking was some twenty
statements from the web process, each a round trip and a statement for SQLAlchemy to run,
and it cost ten times the CPU of the hold before it. SQLite, paid bookings, and requests
with an Idempotency-Key keep the Python steps; the test suite runs both.

The function returns NULL for a hold that costs money (the caller takes the Python path).
Refusals are raised as boxoffice_place_hold's are (SQLSTATE BX401/BX404/BX409, MESSAGE the
problem code, DETAIL a JSON object); nothing of a refused booking is left behind.

Ticket numbers are built here as tickets.service.ticket_number builds them in Python: the
first three ASCII letters of the event's title, the booking reference, the seat's place.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 02:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOOK_FREE = r"""
CREATE OR REPLACE FUNCTION boxoffice_book_free(
    p_booking_id uuid,
    p_user_id uuid,
    p_session_id uuid,  -- with p_token_id: check the caller's session first (NULL: checked)
    p_token_id uuid,
    p_hold_id uuid,
    p_reference text,
    p_job_max_attempts integer,
    p_now timestamptz
) RETURNS text
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    v_hold holds%ROWTYPE;
    v_payment_id uuid := gen_random_uuid();
    v_shard record;
    v_prefix text;
    v_event json;
    v_items json;
    v_tickets json;
BEGIN
    IF p_session_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM users u
        WHERE u.id = p_user_id AND u.deleted_at IS NULL
          AND EXISTS (
              SELECT 1 FROM auth_sessions s
              WHERE s.id = p_session_id AND s.user_id = u.id AND s.revoked_at IS NULL
          )
          AND NOT EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = p_token_id)
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'BX401', MESSAGE = 'unauthenticated', DETAIL = '{}';
    END IF;

    -- Claimed and converted at once: the conditional update is the whole race.
    UPDATE holds SET status = 'converted', booking_id = p_booking_id, ended_at = p_now
    WHERE id = p_hold_id AND user_id = p_user_id AND status = 'active'
      AND booking_id IS NULL AND expires_at > p_now AND total_cents = 0
    RETURNING * INTO v_hold;
    IF NOT FOUND THEN
        SELECT * INTO v_hold FROM holds WHERE id = p_hold_id AND user_id = p_user_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION USING ERRCODE = 'BX404', MESSAGE = 'hold_not_found', DETAIL = '{}';
        ELSIF v_hold.status = 'expired'
              OR v_hold.status = 'active' AND v_hold.expires_at <= p_now THEN
            RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'hold_expired', DETAIL = '{}';
        ELSIF v_hold.status <> 'active' OR v_hold.booking_id IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'BX409', MESSAGE = 'hold_not_active',
                DETAIL = json_build_object(
                    'state', CASE WHEN v_hold.booking_id IS NULL THEN v_hold.status
                                  ELSE 'booked' END);
        END IF;
        RETURN NULL;  -- it costs money: the Python steps take payments
    END IF;

    INSERT INTO bookings (
        id, reference, user_id, event_id, hold_id, status, total_cents, currency,
        created_at, updated_at, confirmed_at
    ) VALUES (
        p_booking_id, p_reference, p_user_id, v_hold.event_id, p_hold_id, 'confirmed', 0,
        v_hold.currency, p_now, p_now, p_now
    );
    INSERT INTO payments (
        id, booking_id, user_id, provider, amount_cents, currency, status, created_at,
        updated_at
    ) VALUES (
        v_payment_id, p_booking_id, p_user_id, 'free', 0, v_hold.currency, 'successful',
        p_now, p_now
    );
    -- Held to sold, shard by shard in tier and shard order (as holds.end does it).
    FOR v_shard IN
        SELECT i.stock_id, sum(i.quantity)::integer AS quantity FROM hold_items i
        WHERE i.hold_id = p_hold_id
        GROUP BY i.ticket_type_id, i.stock_id ORDER BY i.ticket_type_id, i.stock_id
    LOOP
        UPDATE ticket_stock SET held = held - v_shard.quantity, sold = sold + v_shard.quantity
        WHERE id = v_shard.stock_id AND held >= v_shard.quantity;
        IF NOT FOUND THEN  -- the invariants make this unreachable; shout if not
            RAISE EXCEPTION 'shard % holds fewer seats than its holds', v_shard.stock_id;
        END IF;
    END LOOP;

    SELECT json_build_object(
               'title', e.title, 'starts_at', e.starts_at AT TIME ZONE 'UTC',
               'venue_name', e.venue_name, 'city', e.city, 'country', e.country),
           rpad(upper(regexp_replace(e.title COLLATE "C", '[^A-Za-z]', '', 'g')), 3, 'X')
    INTO v_event, v_prefix
    FROM events e WHERE e.id = v_hold.event_id;
    SELECT json_agg(json_build_array(i.id, i.ticket_type_id, i.stock_id, i.quantity,
                                     i.unit_price_cents, t.name)
                    ORDER BY i.ticket_type_id, i.stock_id)
    INTO v_items
    FROM hold_items i JOIN ticket_types t ON t.id = i.ticket_type_id
    WHERE i.hold_id = p_hold_id;

    -- One ticket per seat, numbered in tier and shard order from 01.
    WITH seat AS (
        SELECT i.ticket_type_id, i.unit_price_cents,
               row_number() OVER (ORDER BY i.ticket_type_id, i.stock_id, n) AS place
        FROM hold_items i, generate_series(1, i.quantity) AS n
        WHERE i.hold_id = p_hold_id
    ), issued AS (
        INSERT INTO tickets (
            id, booking_id, event_id, ticket_type_id, user_id, number, holder_name,
            price_cents, currency, status, created_at
        )
        SELECT gen_random_uuid(), p_booking_id, v_hold.event_id, seat.ticket_type_id,
               p_user_id,
               v_prefix || '-' || left(p_reference, 4) || '-' || substr(p_reference, 5)
                   || '-' || CASE WHEN seat.place < 10 THEN '0' ELSE '' END || seat.place,
               u.name, seat.unit_price_cents, v_hold.currency, 'valid', p_now
        FROM seat, users u WHERE u.id = p_user_id
        RETURNING id, ticket_type_id, number, holder_name, price_cents
    )
    SELECT json_agg(json_build_array(id, ticket_type_id, number, holder_name, price_cents)
                    ORDER BY number)
    INTO v_tickets FROM issued;

    INSERT INTO interactions (id, kind, event_id, user_id, quantity, data, created_at)
    VALUES (gen_random_uuid(), 'purchase', v_hold.event_id, p_user_id, v_hold.quantity,
            json_build_object('booking_id', p_booking_id), p_now);
    INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_after, created_at)
    VALUES (gen_random_uuid(), 'orders.booking_confirmed',
            json_build_object('booking_id', p_booking_id), 'pending', 0, p_job_max_attempts,
            p_now, p_now);

    RETURN json_build_object(
        'event_id', v_hold.event_id,
        'currency', v_hold.currency,
        'payment_id', v_payment_id,
        'event', v_event,
        'items', v_items,
        'tickets', v_tickets
    )::text;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BOOK_FREE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS boxoffice_book_free("
            "uuid, uuid, uuid, uuid, uuid, text, integer, timestamptz)"
        )
