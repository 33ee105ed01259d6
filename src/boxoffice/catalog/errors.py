from boxoffice.errors import Conflict, NotFound


class EventNotFound(NotFound):
    title = "Event not found"


class TicketTypeNotFound(NotFound):
    title = "Ticket type not found"

    @classmethod
    def of_event(cls, ticket_type_id: object) -> "TicketTypeNotFound":
        return cls(f"The event has no ticket type {ticket_type_id}.")


class CategoryNotFound(NotFound):
    title = "Category not found"


class CategoryExists(Conflict):
    code, title = "category_exists", "A category with this slug exists"


class EventCancelled(Conflict):
    code, title = "event_cancelled", "The event is cancelled and can no longer be changed"


class EventHasSales(Conflict):
    code, title = "event_has_sales", "Tickets to this event have been sold"


class TicketTypeHasSales(Conflict):
    code, title = "ticket_type_has_sales", "This ticket type has sales or live holds"
