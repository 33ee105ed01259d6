"""Amounts as providers want them. We keep minor units (API.md); providers take major
units, whose size is the currency's ISO 4217 exponent."""

from decimal import Decimal

# ISO 4217 currencies whose minor unit is not a hundredth (the list changes rarely).
_EXPONENTS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def exponent(currency: str) -> int:
    return _EXPONENTS.get(currency.upper(), 2)


def to_major(amount_minor: int, currency: str) -> Decimal:
    """1050 KES cents → Decimal('10.50'); 5000 UGX → Decimal('5000')."""
    return Decimal(amount_minor).scaleb(-exponent(currency))


def is_whole(amount_minor: int, currency: str) -> bool:
    """Whether the amount has no fraction of a major unit (Daraja takes whole KES only)."""
    return amount_minor % 10 ** exponent(currency) == 0
