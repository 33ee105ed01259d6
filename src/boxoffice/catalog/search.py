"""Keyword search and the derived fields it needs, identical on SQLite and PostgreSQL.

Both engines index `events.search_text`, which holds casefolded words separated by single
spaces: FTS5's unicode61 tokenizer and PostgreSQL's 'simple' parser then see exactly the
same tokens, so the same query finds the same events on either.
"""

import re
import unicodedata
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, literal_column, text
from sqlalchemy import func as sql

if TYPE_CHECKING:
    from boxoffice.catalog.models import Category, Event

MAX_WORDS = 8
MAX_WORD_LENGTH = 40
_SEPARATORS = re.compile(r"[\W_]+")


def normalise(value: str) -> str:
    """Casefolded words separated by single spaces; punctuation, symbols and emoji dropped."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    if not folded.isascii():
        # FTS5 indexes numerals such as Ethiopic ፩ or Bengali ৴ (category No) as word
        # characters, PostgreSQL's parser skips them: drop them for both to agree.
        folded = "".join(" " if unicodedata.category(ch) == "No" else ch for ch in folded)
    return _SEPARATORS.sub(" ", folded).strip()


def keywords(query: str) -> list[str]:
    """The words a fan typed, as search terms: no operators survive normalisation."""
    return [word[:MAX_WORD_LENGTH] for word in normalise(query).split()[:MAX_WORDS]]


def index_fields(event: "Event", category: "Category | None") -> None:
    """Fill the event's derived search columns from its own fields."""
    genre = f"{category.name} {category.slug}" if category else ""
    parts = (
        event.title,
        " ".join(event.artists),
        event.venue_name,
        event.city,
        genre,
        event.description,
    )
    event.search_text = normalise(" ".join(parts))
    event.artists_key = "\n".join(normalise(artist) for artist in event.artists)
    event.venue_key = normalise(event.venue_name)
    event.city_key = normalise(event.city)
    event.starts_on = event.starts_at.astimezone(ZoneInfo(event.timezone)).date()


def matching_event_ids(dialect: str, words: list[str]) -> ColumnElement[bool]:
    """`events.id IN (…)` for events whose text has every word, whole or as a prefix."""
    from boxoffice.catalog.models import Event

    if dialect == "postgresql":
        query = " & ".join(f"{word}:*" for word in words)
        vector = sql.to_tsvector(literal_column("'simple'"), Event.search_text)
        return vector.op("@@")(sql.to_tsquery(literal_column("'simple'"), query))
    query = " AND ".join(f'"{word}"*' for word in words)
    ids = text("SELECT event_id FROM events_fts WHERE events_fts MATCH :fts_query").bindparams(
        fts_query=query
    )
    return Event.id.in_(ids.columns(literal_column("event_id")))
