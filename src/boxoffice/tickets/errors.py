from boxoffice.errors import Conflict, NotFound


class TicketNotFound(NotFound):
    title = "Ticket not found"


class InvalidTicket(NotFound):
    code, title = "invalid_ticket", "Not a ticket to this event"


class AlreadyCheckedIn(Conflict):
    code, title = "already_checked_in", "This ticket was already used"


class TicketCancelled(Conflict):
    code, title = "ticket_cancelled", "This ticket was cancelled"
