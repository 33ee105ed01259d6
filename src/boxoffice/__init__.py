"""boxoffice: concert and event ticketing with mobile-money payments."""
