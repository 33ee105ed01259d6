"""Great-circle distance, the one formula both databases use (SQLite calls it in Python,
PostgreSQL runs the same formula as the SQL function of migration 0002)."""

import math

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Haversine distance in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(lat: float, lng: float, radius_km: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lng, max_lng) enclosing the circle: an index-friendly
    pre-filter before the exact distance."""
    dlat = math.degrees(radius_km / EARTH_RADIUS_KM)
    max_lat, min_lat = min(90.0, lat + dlat), max(-90.0, lat - dlat)
    if max_lat >= 90 or min_lat <= -90:
        return min_lat, max_lat, -180.0, 180.0
    dlng = math.degrees(radius_km / (EARTH_RADIUS_KM * math.cos(math.radians(lat))))
    if dlng >= 180:
        return min_lat, max_lat, -180.0, 180.0
    return min_lat, max_lat, lng - dlng, lng + dlng
