"""A ticket as a one-page PDF: what the door needs (the QR code, the number) and what the
fan needs (event, date and time where it happens, venue, tier, holder, price)."""

import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import segno
from fpdf import FPDF

from boxoffice.payments.money import to_major

PAGE_WIDTH = 105  # mm: A6, fits a phone screen and a printer
PAGE_HEIGHT = 148
MARGIN = 8


@dataclass(frozen=True, slots=True)
class TicketSheet:
    number: str
    code: str  # the signed QR payload
    holder: str
    tier: str
    price_minor: int
    currency: str
    event_title: str
    starts_at: datetime
    timezone: str
    venue: str
    city: str
    country: str


def render(sheet: TicketSheet) -> bytes:
    pdf = FPDF(unit="mm", format=(PAGE_WIDTH, PAGE_HEIGHT))
    pdf.set_title(_text(f"{sheet.event_title} - {sheet.number}"))
    pdf.set_author("boxoffice")
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.set_auto_page_break(auto=False)
    pdf.add_page()
    width = PAGE_WIDTH - 2 * MARGIN

    pdf.set_font("Helvetica", "B", 15)
    title = _text(_shortened(sheet.event_title, 80))  # three lines at most
    pdf.multi_cell(width, 7, title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    local = sheet.starts_at.astimezone(ZoneInfo(sheet.timezone))
    for line in (
        f"{local:%A %d %B %Y, %H:%M} ({sheet.timezone})",
        f"{sheet.venue}, {sheet.city}, {sheet.country}",
    ):
        pdf.multi_cell(width, 5, _text(line), new_x="LMARGIN", new_y="NEXT")

    side = 62
    pdf.image(_qr_png(sheet.code), x=(PAGE_WIDTH - side) / 2, y=pdf.get_y() + 4, w=side, h=side)
    pdf.set_y(pdf.get_y() + side + 8)
    pdf.set_font("Courier", "B", 13)
    pdf.cell(width, 6, _text(sheet.number), align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    price = f"{sheet.currency} {to_major(sheet.price_minor, sheet.currency):,}"
    for label, value in (("Holder", sheet.holder), ("Ticket", sheet.tier), ("Price", price)):
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(18, 5, label)
        pdf.set_font("Helvetica", "", 10)
        pdf.cell(width - 18, 5, _text(_shortened(value, 40)), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "I", 7)
    pdf.set_y(PAGE_HEIGHT - MARGIN - 4)
    pdf.cell(width, 4, "Show this code at the door. One entry per ticket.", align="C")
    return bytes(pdf.output())


def _qr_png(payload: str) -> io.BytesIO:
    png = io.BytesIO()
    segno.make(payload, error="m").save(png, kind="png", scale=8, border=2)
    png.seek(0)
    return png


def _shortened(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


_PUNCTUATION = str.maketrans(  # em and en dashes, curly quotes
    {"\u2014": "-", "\u2013": "-", "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
)


def _text(value: str) -> str:
    """The PDF's built-in fonts cover Latin-1: accents are kept where Latin-1 has them,
    typographic punctuation becomes its plain form, other letters lose their marks
    (ő → o), and what remains outside becomes '?'."""
    value = value.translate(_PUNCTUATION).replace("…", "...")
    if all(ord(char) < 256 for char in value):
        return value
    stripped = "".join(
        char if ord(char) < 256 else unicodedata.normalize("NFKD", char)[0] for char in value
    )
    return stripped.encode("latin-1", "replace").decode("latin-1")
