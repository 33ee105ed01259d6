import uuid

from boxoffice.errors import Conflict, NotFound


class CapacityBelowSold(Conflict):
    code, title = "capacity_below_sold", "Capacity cannot go below the seats sold and held"


class SoldOut(Conflict):
    code, title = "sold_out", "Not enough tickets left"

    def __init__(self, ticket_type_id: uuid.UUID, available: int) -> None:
        super().__init__(
            f"Only {available} ticket(s) of this type are left.",
            ticket_type_id=str(ticket_type_id),
            available=available,
        )
        self.ticket_type_id = ticket_type_id
        self.available = available


class NotOnSale(Conflict):
    code, title = "not_on_sale", "These tickets are not on sale"

    def __init__(self, ticket_type_id: uuid.UUID, name: str) -> None:
        super().__init__(f"{name} tickets are not on sale now.", ticket_type_id=str(ticket_type_id))


class TicketLimitExceeded(Conflict):
    code, title = "ticket_limit_exceeded", "Over the ticket limit"

    @classmethod
    def per_order(cls, ticket_type_id: uuid.UUID, name: str, limit: int) -> "TicketLimitExceeded":
        return cls(
            f"At most {limit} {name} ticket(s) per order.",
            ticket_type_id=str(ticket_type_id),
            limit=limit,
        )

    @classmethod
    def per_person(cls, limit: int, held_or_bought: int) -> "TicketLimitExceeded":
        return cls(
            f"At most {limit} ticket(s) per person for this event; you have {held_or_bought}.",
            limit=limit,
            held_or_bought=held_or_bought,
        )


class HoldNotFound(NotFound):
    title = "Hold not found"


class HoldNotActive(Conflict):
    code, title = "hold_not_active", "The hold is no longer active"

    @classmethod
    def being(cls, state: str) -> "HoldNotActive":
        """For a booking of a hold that is `state` ("booked", "released", …)."""
        return cls(f"The hold is {state}.")


class HoldExpired(Conflict):
    code, title = "hold_expired", "The hold has expired"

    @classmethod
    def for_booking(cls) -> "HoldExpired":
        return cls("The hold has expired; hold the seats again.")
