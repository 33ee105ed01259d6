"""Safaricom M-Pesa through Daraja's STK Push (M-Pesa Express) and reversal APIs."""
