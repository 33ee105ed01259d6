"""Payments for bookings, behind one provider protocol (ARCHITECTURE §6)."""
