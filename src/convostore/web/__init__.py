"""``convostore serve``: a read-only web viewer of the bots' conversations, for operators.

Server-rendered HTML (Starlette + Jinja2, no JavaScript at all), loaded only by ``convostore
serve`` (the ``web`` extra). Pages: the bots; a bot's channels and DMs; a channel's sessions; a
session's transcript; a user's messages across channels; a search box when the store can search.

* Nothing writes: SQLite connections run with ``PRAGMA query_only``, PostgreSQL sessions with
  ``default_transaction_read_only``, and every transaction is a deferred (read) one.
* Every value goes through Jinja2's autoescaping; control and invisible characters are shown as
  visible escapes; every response carries a strict Content-Security-Policy (no script at all, styles
  from this server only), ``X-Content-Type-Options: nosniff``, no referrer, no framing.
* With a token (``--token-env NAME``) every request must carry it: ``Authorization: Bearer …``, or
  ``?token=…`` once, which sets an HttpOnly, SameSite=Strict cookie for the links that follow.
"""

from convostore.web.app import create_app

__all__ = ["create_app"]
