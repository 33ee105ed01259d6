"""Countries, currencies and time zones: the ISO and IANA lists, from maintained packages."""

import importlib.resources
from functools import cache
from zoneinfo import available_timezones

import pycountry


def is_country(code: str) -> bool:
    return len(code) == 2 and pycountry.countries.get(alpha_2=code.upper()) is not None


def is_currency(code: str) -> bool:
    return len(code) == 3 and pycountry.currencies.get(alpha_3=code.upper()) is not None


@cache
def timezones() -> frozenset[str]:
    return frozenset(available_timezones())


@cache
def _zones_by_country() -> dict[str, list[str]]:
    # zone.tab, shipped with tzdata: one line per zone, "CC<TAB>coordinates<TAB>Zone/Name".
    table = importlib.resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    zones: dict[str, list[str]] = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _, zone, *_ = line.split("\t")
            zones.setdefault(country, []).append(zone)
    return zones


def default_timezone(country: str) -> str:
    """The country's zone when it has exactly one (Uganda: Africa/Kampala), else UTC."""
    zones = _zones_by_country().get(country.upper(), [])
    return zones[0] if len(zones) == 1 else "UTC"
