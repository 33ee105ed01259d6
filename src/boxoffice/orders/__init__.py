"""Bookings: made from a hold, confirmed by a payment, cancelled within the deadline."""
