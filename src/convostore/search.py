"""What a search query means, and the snippet shown with each hit.

A query is plain words and ``"quoted phrases"``; a message matches when it contains every word and
every phrase (case-insensitive). Everything else is text: operators of the database's own query
language (``*``, ``NEAR(``, ``-``, ``:``, ``OR``, a lone ``"``) are never interpreted. A term with
no letter or digit in it can match nothing that the index holds and is dropped; a query left
without terms finds nothing.
"""

from __future__ import annotations

import re

from convostore.errors import InvalidInput

__all__ = ["MAX_QUERY_LENGTH", "MAX_TERMS", "query_terms", "relevance", "snippet"]

MAX_QUERY_LENGTH = 1_000
MAX_TERMS = 32
_PHRASE = re.compile(r'"([^"]*)"')
# What both indexes treat as part of a word: letters and digits (not "_", not punctuation).
_WORD = re.compile(r"[^\W_]+")


def query_terms(query: str) -> list[str]:
    """The words and phrases of ``query``, in order, each once, as plain text."""
    if not isinstance(query, str):
        raise InvalidInput(f"query must be a str, not {type(query).__name__}")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"query is longer than {MAX_QUERY_LENGTH} characters")
    raw: list[str] = []
    position = 0
    for match in _PHRASE.finditer(query):
        raw.extend(query[position : match.start()].split())
        raw.append(" ".join(match.group(1).split()))
        position = match.end()
    # An unbalanced quote is text like any other character.
    raw.extend(query[position:].split())
    terms: list[str] = []
    seen: set[str] = set()
    for term in raw:
        key = term.casefold()
        if _WORD.search(term) and key not in seen:
            seen.add(key)
            terms.append(term)
    return terms[:MAX_TERMS]


def _wanted(terms: list[str]) -> set[str]:
    return {word.casefold() for term in terms for word in _WORD.findall(term)}


def relevance(content: str, terms: list[str]) -> float:
    """The share of ``content``'s words that are words of the query, in (0, 1] for a match.

    Computed here, not by the database, so it is the same number on SQLite and PostgreSQL.
    """
    words = _WORD.findall(content)
    if not words:
        return 0.0
    wanted = _wanted(terms)
    return sum(word.casefold() in wanted for word in words) / len(words)


def snippet(content: str, terms: list[str], *, width: int = 160) -> str:
    """About ``width`` characters of ``content`` around its first match, matches in ``[…]``.

    One line (whitespace runs become one space); ``…`` marks text cut off at either end.
    """
    wanted = _wanted(terms)
    hits = [m for m in _WORD.finditer(content) if m.group().casefold() in wanted]
    start = 0
    if hits:
        start = max(0, hits[0].start() - width // 4)
        # Start at a word boundary rather than inside a word.
        while 0 < start < hits[0].start() and not content[start - 1].isspace():
            start += 1
    end = min(len(content), start + width)
    while start < end < len(content) and not content[end].isspace() and end - start > width // 2:
        end -= 1
    pieces = ["…" if start > 0 else ""]
    at = start
    for hit in hits:
        if hit.start() < start:
            continue
        if hit.end() > end:
            break
        pieces.append(content[at : hit.start()])
        pieces.append(f"[{hit.group()}]")
        at = hit.end()
    pieces.append(content[at:end])
    pieces.append("…" if end < len(content) else "")
    return " ".join("".join(pieces).split())
