"""The viewer's Starlette application (see :mod:`convostore.web`)."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import datetime
from typing import Any, TypeVar

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from convostore.config import BotConfig
from convostore.db import translate_errors
from convostore.engine import make_engine, read_only
from convostore.errors import ConvostoreError, InvalidInput
from convostore.ops.export import visible
from convostore.schema import check_schema
from convostore.web import queries

_T = TypeVar("_T")

CHANNELS_PER_PAGE = 50
SESSIONS_PER_PAGE = 50
MESSAGES_PER_PAGE = 100
TOKEN_COOKIE = "convostore_token"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _query_only_engine(url: str) -> AsyncEngine:
    """An engine whose connections cannot write (the database refuses it, not just our code)."""
    backend = url.split(":", 1)[0].split("+", 1)[0]
    if backend == "postgresql":
        engine = make_engine(
            url,
            pool_size=2,
            max_overflow=2,
            connect_args={"server_settings": {"default_transaction_read_only": "on"}},
        )
    else:
        engine = make_engine(url, pool_size=2, max_overflow=2)

        @event.listens_for(engine.sync_engine, "connect")
        def _query_only(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only = ON")
            cursor.close()

    return read_only(engine)


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{at:%Y-%m-%d %H:%M:%S} UTC"


# Bidirectional overrides and isolates would reorder the page around them (a name that reads as
# something else); they are shown as their code points. Zero-width joiners stay (emoji use them).
_BIDI = {
    c: f"<U+{c:04X}>"
    for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}


def _shown(text: str | None) -> str:
    """Text as shown: control characters as their pictures, bidi controls as code points."""
    return visible(text or "").translate(_BIDI)


class Viewer:
    """The bots, their read-only engines (one per database), and the page handlers."""

    def __init__(self, configs: Sequence[BotConfig], token: str | None = None) -> None:
        self.configs = {c.name: c for c in sorted(configs, key=lambda c: c.name)}
        self.token = token
        self._engines: dict[str, AsyncEngine] = {}
        self._checked: set[str] = set()
        self._stores: dict[str, Any] = {}
        self._stack = AsyncExitStack()
        self.env = Environment(
            loader=PackageLoader("convostore.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["when"] = _when
        self.env.filters["shown"] = _shown
        self.env.globals["can_search"] = self.can_search

    @property
    def can_search(self) -> bool:
        from convostore.store import BotStore

        return hasattr(BotStore, "search")

    def engine(self, config: BotConfig) -> AsyncEngine:
        url = config.database_url
        if url not in self._engines:
            self._engines[url] = _query_only_engine(url)
        return self._engines[url]

    async def read(self, config: BotConfig, work: Callable[[Connection], _T]) -> _T:
        where = config.safe_database_url
        with translate_errors(where):
            async with self.engine(config).connect() as connection:
                if config.database_url not in self._checked:
                    await check_schema(connection, where)
                    self._checked.add(config.database_url)
                return await connection.run_sync(work)

    async def close(self) -> None:
        await self._stack.aclose()
        for engine in self._engines.values():
            await engine.dispose()

    def render(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        started = context.pop("started", None)
        html = self.env.get_template(name).render(bots=list(self.configs), **context)
        response = HTMLResponse(html, status_code=status)
        if started is not None:
            response.headers["Server-Timing"] = (
                f"total;dur={(time.perf_counter() - started) * 1000:.1f}"
            )
        return response

    def error(self, status: int, message: str) -> HTMLResponse:
        return self.render("error.html", status=status, message=message)

    def bot(self, request: Request) -> BotConfig:
        name = request.query_params.get("bot", "")
        if name not in self.configs:
            raise _NotFound(f"no bot named {name!r}")
        return self.configs[name]

    # --- pages -------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        started = time.perf_counter()
        summaries = []
        for config in self.configs.values():

            def work(c: Connection, bot: str = config.name) -> queries.BotSummary:
                return queries.bot_summary(c, bot)

            summaries.append(await self.read(config, work))
        return self.render("index.html", summaries=summaries, started=started)

    async def bot_page(self, request: Request) -> Response:
        started = time.perf_counter()
        config = self.bot(request)
        number = _page_number(request)

        def work(c: Connection) -> tuple[queries.BotSummary, queries.Page]:
            return (
                queries.bot_summary(c, config.name),
                queries.channels(c, config.name, number, CHANNELS_PER_PAGE),
            )

        summary, page = await self.read(config, work)
        return self.render("bot.html", bot=config.name, summary=summary, page=page, started=started)

    async def channel_page(self, request: Request) -> Response:
        started = time.perf_counter()
        config = self.bot(request)
        channel_id = request.query_params.get("channel", "")
        number = _page_number(request)

        def work(c: Connection) -> tuple[queries.ChannelRow | None, queries.Page]:
            return (
                queries.channel(c, config.name, channel_id),
                queries.sessions(c, config.name, channel_id, number, SESSIONS_PER_PAGE),
            )

        found, page = await self.read(config, work)
        if found is None:
            raise _NotFound(f"no channel {channel_id!r} for bot {config.name}")
        return self.render(
            "channel.html", bot=config.name, channel=found, page=page, started=started
        )

    async def session_page(self, request: Request) -> Response:
        started = time.perf_counter()
        config = self.bot(request)
        channel_id = request.query_params.get("channel", "")
        session_id = request.query_params.get("session", "")
        number = _page_number(request)

        def work(c: Connection) -> tuple[Any, Any, queries.Page]:
            return (
                queries.channel(c, config.name, channel_id),
                queries.session(c, config.name, channel_id, session_id),
                queries.transcript(
                    c, config.name, channel_id, session_id, number, MESSAGES_PER_PAGE
                ),
            )

        found, session, page = await self.read(config, work)
        if found is None or session is None:
            raise _NotFound(f"no session {session_id!r} in channel {channel_id!r}")
        return self.render(
            "session.html",
            bot=config.name,
            channel=found,
            session=session,
            page=page,
            started=started,
        )

    async def user_page(self, request: Request) -> Response:
        started = time.perf_counter()
        config = self.bot(request)
        user_id = request.query_params.get("user", "")
        number = _page_number(request)

        def work(c: Connection) -> tuple[queries.Page, dict[str, str]]:
            page = queries.user_messages(c, config.name, user_id, number, MESSAGES_PER_PAGE)
            names = queries.channel_names(c, config.name, [m.channel_id for m in page.items])
            return page, names

        page, names = await self.read(config, work)
        username = next((m.username for m in page.items if m.username), "")
        return self.render(
            "user.html",
            bot=config.name,
            user_id=user_id,
            username=username,
            page=page,
            names=names,
            started=started,
        )

    async def message_page(self, request: Request) -> Response:
        """Where a reply points: the transcript page that holds the message."""
        config = self.bot(request)
        message_id = request.query_params.get("id", "")

        def work(c: Connection) -> tuple[Any, int]:
            found = queries.find_message(c, config.name, message_id)
            return found, (0 if found is None else queries.position(c, found))

        found, before = await self.read(config, work)
        if found is None:
            raise _NotFound(f"no message {message_id!r} stored for bot {config.name}")
        from urllib.parse import urlencode

        query = urlencode(
            {
                "bot": config.name,
                "channel": found.channel_id,
                "session": found.session_id,
                "page": before // MESSAGES_PER_PAGE + 1,
            }
        )
        return RedirectResponse(f"/session?{query}#m-{found.id}", status_code=303)

    async def search_page(self, request: Request) -> Response:
        started = time.perf_counter()
        config = self.bot(request)
        query = request.query_params.get("q", "").strip()
        if not self.can_search:
            raise _NotFound("search is not available in this convostore")
        hits: list[Any] = []
        names: dict[str, str] = {}
        if query:
            store = await self._store(config)
            try:
                with translate_errors(config.safe_database_url):
                    hits = list(await store.search(query, limit=MESSAGES_PER_PAGE))
            except InvalidInput as exc:
                # The search page again, with the query in its box to correct and the reason.
                return self.render(
                    "search.html", status=400, bot=config.name, query=query, refused=str(exc)
                )
            ids = [h.message.channel_id for h in hits]
            names = await self.read(config, lambda c: queries.channel_names(c, config.name, ids))
        return self.render(
            "search.html", bot=config.name, query=query, hits=hits, names=names, started=started
        )

    async def _store(self, config: BotConfig) -> Any:
        """The bot's store, opened on the first search (opening a store only reads)."""
        if config.name not in self._stores:
            from convostore.store import BotStore

            with translate_errors(config.safe_database_url):
                self._stores[config.name] = await self._stack.enter_async_context(
                    BotStore.open(config)
                )
        return self._stores[config.name]


class _NotFound(Exception):
    pass


def _page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    try:
        number = int(raw)
    except ValueError:
        return 1
    return max(1, min(number, 1_000_000))


def _guard(
    viewer: Viewer, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except _NotFound as exc:
            return viewer.error(404, str(exc))
        except InvalidInput as exc:
            return viewer.error(400, str(exc))
        except ConvostoreError as exc:
            return viewer.error(503, str(exc))

    return endpoint


class _Security(BaseHTTPMiddleware):
    def __init__(self, app: Any, token: str | None) -> None:
        super().__init__(app)
        self.token = token

    def _authorised(self, request: Request) -> tuple[bool, bool]:
        """(allowed, set the cookie)."""
        if self.token is None:
            return True, False
        expected = self.token.encode()
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), expected):
            return True, False
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        if cookie and hmac.compare_digest(cookie.encode(), expected):
            return True, False
        query = request.query_params.get("token", "")
        if query and hmac.compare_digest(query.encode(), expected):
            return True, True
        return False, False

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        allowed, set_cookie = self._authorised(request)
        if not allowed:
            response: Response = HTMLResponse(
                "<!doctype html><title>401</title><p>This viewer needs its token: open it with "
                "?token=… or send Authorization: Bearer …</p>",
                status_code=401,
            )
            response.headers["WWW-Authenticate"] = "Bearer"
        elif request.method not in ("GET", "HEAD"):
            response = HTMLResponse("read-only viewer", status_code=405)
        else:
            response = await call_next(request)
        if set_cookie and self.token is not None:
            response.set_cookie(
                TOKEN_COOKIE, self.token, httponly=True, samesite="strict", path="/"
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response


async def _no_icon(_request: Request) -> Response:
    return Response(status_code=204)


def create_app(configs: Sequence[BotConfig], *, token: str | None = None) -> Starlette:
    """The viewer for ``configs`` (bots with storage enabled); ``token`` guards every request."""
    from importlib.resources import files

    viewer = Viewer([c for c in configs if c.storage.enabled], token)
    routes = [
        Route("/", _guard(viewer, viewer.index)),
        Route("/bot", _guard(viewer, viewer.bot_page)),
        Route("/channel", _guard(viewer, viewer.channel_page)),
        Route("/session", _guard(viewer, viewer.session_page)),
        Route("/user", _guard(viewer, viewer.user_page)),
        Route("/message", _guard(viewer, viewer.message_page)),
        Route("/search", _guard(viewer, viewer.search_page)),
        Route("/favicon.ico", _no_icon),
        Mount(
            "/static", StaticFiles(directory=str(files("convostore.web") / "static")), name="static"
        ),
    ]

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await viewer.close()

    app = Starlette(
        routes=routes, middleware=[Middleware(_Security, token=token)], lifespan=lifespan
    )
    app.state.viewer = viewer
    return app
