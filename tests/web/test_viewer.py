"""``convostore serve``: pages, escaping, headers, token, read-only, pagination, both backends."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from convostore import BotConfig, BotStore, ChannelInfo
from convostore.cli import main
from convostore.errors import ConvostoreError
from convostore.web import create_app
from convostore.web.app import MESSAGES_PER_PAGE
from tests.conftest import ROOT, ConfigFactory

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HOSTILE_NAME = '<script>alert("name")</script>'
HOSTILE_CONTENT = '"><img src=x onerror=alert(1)> {{ 7*7 }} \u202eevil\x1b[2J'
TOKEN = "correct-horse-battery-staple-42"


async def _fill(config: BotConfig) -> None:
    async with BotStore.open(config) as store:
        general = ChannelInfo.channel(101, "general")
        for i in range(MESSAGES_PER_PAGE + 20):
            await store.add_message(
                general,
                user_id=42,
                username="alice",
                role="user" if i % 2 == 0 else "assistant",
                content=f"line {i}",
                timestamp=T0 + timedelta(seconds=i),
                message_id=5000 + i,
            )
        hostile = ChannelInfo.channel(666, HOSTILE_NAME)
        await store.add_message(
            hostile,
            user_id=7,
            username='<b onmouseover="x">mallory</b>',
            role="user",
            content=HOSTILE_CONTENT,
            timestamp=T0 + timedelta(hours=1),
            message_id=6001,
        )
        await store.add_message(
            general,
            user_id=43,
            username="bob",
            role="user",
            content="answering line 3",
            timestamp=T0 + timedelta(seconds=MESSAGES_PER_PAGE + 20),
            message_id=6003,
            reply_to_message_id=5003,
        )
        await store.edit_message(5001, content="line 1 (edited)", edited_at=T0 + timedelta(hours=3))
        await store.add_message(
            ChannelInfo.dm(555, 42, "alice"),
            user_id=42,
            username="alice",
            role="user",
            content="a private word",
            timestamp=T0 + timedelta(hours=2),
            message_id=6002,
        )


@pytest.fixture
def config(make_config: ConfigFactory) -> BotConfig:
    cfg = make_config("sage")
    asyncio.run(_fill(cfg))
    return cfg


@pytest.fixture
def client(config: BotConfig) -> Iterator[TestClient]:
    with TestClient(create_app([config])) as opened:
        yield opened


def _links(html: str, cls: str) -> list[str]:
    return [
        href.replace("&amp;", "&") for href in re.findall(rf'<a class="{cls}" href="([^"]+)"', html)
    ]


def test_click_through_bot_channel_session_user(client: TestClient) -> None:
    index = client.get("/")
    assert index.status_code == 200
    [bot] = _links(index.text, "bot")
    assert ">123<" in index.text  # messages, from the sessions' counters

    page = client.get(bot)
    assert "general" in page.text and "DM" in page.text
    channels = _links(page.text, "channel")
    assert len(channels) == 3
    general = next(link for link in channels if "channel=101" in link)
    sessions = client.get(general)
    [session] = _links(sessions.text, "session")
    transcript = client.get(session)
    assert transcript.status_code == 200
    assert transcript.text.count('<article class="message') == MESSAGES_PER_PAGE
    assert "line 0" in transcript.text and f"line {MESSAGES_PER_PAGE}<" not in transcript.text
    [next_page] = re.findall(r'<a rel="next" href="([^"]+)"', transcript.text)
    second = client.get(session.split("?")[0] + next_page.replace("&amp;", "&"))
    assert second.text.count('<article class="message') == 21
    assert f"line {MESSAGES_PER_PAGE + 19}" in second.text

    user = re.search(r'<a class="who" href="([^"]+)"', transcript.text)
    assert user is not None
    across = client.get(user.group(1).replace("&amp;", "&"))
    assert "a private word" in across.text and f"line {MESSAGES_PER_PAGE + 19}" in across.text
    assert "alice_42" in across.text  # where each message was: the DM's readable name

    assert client.get("/bot?bot=nobody").status_code == 404
    assert client.get("/channel?bot=sage&channel=999").status_code == 404
    assert client.get("/session?bot=sage&channel=101&session=nope").status_code == 404


def test_edits_and_replies_are_shown(client: TestClient) -> None:
    page = client.get("/session?bot=sage&channel=101&session=" + _first_session(client))
    assert "line 1 (edited)" in page.text
    assert "edited 2026-11-20 12:00:00 UTC" in page.text
    last = client.get(page.url.path + "?" + page.url.query.decode() + "&page=2")
    [reply] = re.findall(r'<a class="reply" href="([^"]+)"', last.text)
    assert "reply to 5003" in last.text
    jump = client.get(reply.replace("&amp;", "&"), follow_redirects=False)
    assert jump.status_code == 303 and jump.headers["location"].endswith("#m-4")
    target = client.get(jump.headers["location"])
    assert 'id="m-4"' in target.text and "line 3" in target.text


def _first_session(client: TestClient) -> str:
    page = client.get("/channel?bot=sage&channel=101")
    [link] = _links(page.text, "session")
    return link.rsplit("session=", 1)[1]


def test_hostile_names_and_content_are_escaped(client: TestClient) -> None:
    bot = client.get("/bot?bot=sage")
    assert "<script>" not in bot.text
    assert "&lt;script&gt;alert(&#34;name&#34;)&lt;/script&gt;" in bot.text
    hostile = next(link for link in _links(bot.text, "channel") if "channel=666" in link)
    session = _links(client.get(hostile).text, "session")[0]
    page = client.get(session)
    assert "<img" not in page.text and "<b onmouseover" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "{{ 7*7 }}" in page.text and "49" not in page.text  # no template injection
    assert "\x1b" not in page.text and "\u202e" not in page.text
    assert "&lt;U+202E&gt;evil\u241b[2J" in page.text
    for response in (bot, page, client.get("/static/style.css"), client.get("/bot?bot=x")):
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_refused_search_is_a_400_page_escaped_with_the_headers(client: TestClient) -> None:
    hostile = '"><script>alert("q")</script>' + "x" * 1000  # longer than a query may be
    refused = client.get("/search", params={"bot": "sage", "q": hostile})
    assert refused.status_code == 400
    assert "Search refused: query is longer than 1000 characters" in refused.text
    assert "<script>" not in refused.text
    # The query stays in the search box to correct, as text.
    assert 'value="&#34;&gt;&lt;script&gt;alert(&#34;q&#34;)&lt;/script&gt;xxx' in refused.text
    policy = refused.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert refused.headers["x-content-type-options"] == "nosniff"
    assert refused.headers["content-type"].startswith("text/html")
    # Input that only matches nothing is not refused.
    for query in ("", "*** NEAR( -", "\u202e<b>"):
        page = client.get("/search", params={"bot": "sage", "q": query})
        assert page.status_code == 200 and "refused" not in page.text
        assert "<b>" not in page.text
    assert "for “&lt;U+202E&gt;&lt;b&gt;”" in page.text


def test_nothing_writes(config: BotConfig, client: TestClient) -> None:
    viewer = client.app.state.viewer  # type: ignore[attr-defined]

    async def try_delete() -> None:
        await viewer.read(config, lambda c: c.execute(text("DELETE FROM conversations")))

    with pytest.raises(ConvostoreError):
        client.portal.call(try_delete)  # type: ignore[union-attr]
    assert ">123<" in client.get("/").text
    assert client.post("/bot?bot=sage").status_code == 405


def test_token_guards_every_request(config: BotConfig) -> None:
    with TestClient(create_app([config], token=TOKEN)) as client:
        assert client.get("/").status_code == 401
        assert client.get("/static/style.css").status_code == 401
        assert client.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/?token=wrong").status_code == 401
        assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        first = client.get(f"/?token={TOKEN}")
        assert first.status_code == 200
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert client.get("/bot?bot=sage").status_code == 200  # the cookie carries it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_a_public_address_without_a_token(
    config: BotConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_dir = _config_dir(config, tmp_path)
    assert main(["serve", "--host", "0.0.0.0", "--config-dir", str(config_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("convostore serve: error: refusing to serve on 0.0.0.0 without a token")
    args = ["serve", "--host", "0.0.0.0", "--token-env", "CONVOSTORE_NO_SUCH_VAR"]
    assert main([*args, "--config-dir", str(config_dir)]) == 1
    assert "CONVOSTORE_NO_SUCH_VAR" in capsys.readouterr().err


def _config_dir(config: BotConfig, tmp_path: Path) -> Path:
    directory = tmp_path / "bots"
    directory.mkdir(exist_ok=True)
    url = config.database_url
    (directory / "sage.yaml").write_text(
        f"storage:\n  url: {url}\n  type: {make_url(url).get_backend_name()}\n"
    )
    return directory


@pytest.mark.slow
def test_serve_on_a_public_address_with_a_token(sqlite_template: Path, tmp_path: Path) -> None:
    """A real server bound to 0.0.0.0: without the token 401, with it the pages."""
    database = tmp_path / "conversations.db"
    shutil.copyfile(sqlite_template, database)
    config = BotConfig.model_validate(
        {"name": "sage", "storage": {"url": f"sqlite+aiosqlite:///{database}"}}
    )
    asyncio.run(_fill(config))
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "VIEWER_TOKEN": TOKEN}
    command = [sys.executable, "-m", "convostore", "serve", "--host", "0.0.0.0"]
    command += ["--port", str(port), "--token-env", "VIEWER_TOKEN"]
    command += ["--config-dir", str(_config_dir(config, tmp_path))]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert response.status_code == 401
        ok = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert ok.status_code == 200 and "sage" in ok.text
        assert "server" not in ok.headers
    finally:
        server.terminate()
        server.communicate(timeout=10)
