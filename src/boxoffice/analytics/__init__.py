"""Analytics: interactions (views, searches, purchases) recorded off the read path."""
