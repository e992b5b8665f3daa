"""``convostore serve``: the read-only web viewer (the ``web`` extra), loaded only here."""

from __future__ import annotations

import argparse
import ipaddress
import os
from typing import Any

from convostore.cli import _ui
from convostore.config import load_configs
from convostore.errors import OperationError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from(args: argparse.Namespace) -> str | None:
    """The token named by --token-env; refuses a missing one and a public address without one."""
    token: str | None = None
    if args.token_env is not None:
        token = os.environ.get(args.token_env, "")
        if len(token) < 16:
            raise OperationError(
                f"--token-env {args.token_env}: the variable is unset or shorter than 16 "
                "characters; set it to a long random value"
            )
    if token is None and not is_loopback(args.host):
        raise OperationError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it would "
            "read every conversation; pass --token-env NAME (or keep the default 127.0.0.1)"
        )
    return token


def cmd_serve(args: argparse.Namespace) -> int:
    token = token_from(args)
    try:
        import uvicorn

        from convostore.web import create_app
    except ModuleNotFoundError as exc:
        raise OperationError(
            f"the web viewer needs the `web` extra ({exc.name} is missing): "
            "pip install 'convostore[web]'"
        ) from None
    configs = [c for c in load_configs(args.config_dir).values() if c.storage.enabled]
    if args.bot is not None:
        configs = [c for c in configs if c.name == args.bot]
        if not configs:
            raise OperationError(f"no bot named {args.bot!r} with storage enabled")
    if not configs:
        raise OperationError("no bot configuration with storage enabled found")
    app = create_app(configs, token=token)
    host = f"[{args.host}]" if ":" in args.host else args.host
    where = f"http://{host}:{args.port}/"
    _ui.console(stderr=True).print(
        f"convostore viewer (read-only) on {where}"
        + (f" (token from ${args.token_env}: open {where}?token=…)" if token else "")
        + "; Ctrl-C stops it",
        markup=False,
        soft_wrap=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", server_header=False)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="read-only web viewer of the conversations (needs the `web` extra)",
        description="Serve a read-only web viewer: bots, channels and DMs, sessions, transcripts, "
        "a user's messages, search.",
        epilog="Examples:\n  convostore serve\n"
        "  VIEWER_TOKEN=$(openssl rand -hex 24) convostore serve --host 0.0.0.0 "
        "--token-env VIEWER_TOKEN",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    parser.add_argument(
        "--token-env",
        default=None,
        metavar="NAME",
        help="environment variable holding a token every request must carry (needed off loopback)",
    )
    parser.set_defaults(handler=cmd_serve)
