"""nnkit-tui --serve: the app in a browser, through textual-serve (the `serve`
extra), for a teacher to project and students without a terminal to follow.

    nnkit-tui --serve                          http://127.0.0.1:8000
    nnkit-tui rnn --check my_rnn.py --serve --port 8080 --host 0.0.0.0

Every browser tab that opens the page gets its own app process on this
machine: this interpreter running `nnkit-tui` with the same command line, the
serve flags taken out. Bound to 127.0.0.1 unless --host says otherwise.
"""
from __future__ import annotations

import argparse
import asyncio
import ipaddress
import shlex
import socket
import sys
from dataclasses import dataclass

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000          # textual-serve's own default
INSTALL_HINT = 'pip install -e ".[serve]"'


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    app_argv: list[str]      # the command line the served app runs with


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The serve flags, defined once: for nnkit-tui's parser (help, errors)
    and for `split_argv`, which takes them out of the command line."""
    parser.add_argument("--serve", action="store_true",
                        help="serve the app in a browser with textual-serve "
                        f"({INSTALL_HINT}); each tab runs its own app with the other options")
    parser.add_argument("--port", type=int, default=None, metavar="N",
                        help=f"the port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--host", default=None, metavar="H",
                        help=f"the address to bind (default {DEFAULT_HOST}, this machine "
                        "only); any other makes the app reachable from the network")


def split_argv(argv: list[str]) -> ServeOptions | None:
    """The serve options of `argv`, None without --serve; ValueError on a bad
    port, or --port/--host without --serve.

    nnkit-tui's own parser has already accepted `argv`, so an abbreviation
    (`--ser`) names one option there and the same one here."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    args, app_argv = parser.parse_known_args(argv)
    if not args.serve:
        for flag in ("port", "host"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag}: expected only with --serve, got --{flag} "
                                 f"{getattr(args, flag)} without it")
        return None
    port = DEFAULT_PORT if args.port is None else args.port
    if not 1 <= port <= 65535:
        raise ValueError(f"--port: expected a port in 1..65535, got {port}")
    host = DEFAULT_HOST if args.host is None else args.host
    if not host:
        raise ValueError("--host: expected an address or host name, got ''")
    return ServeOptions(host, port, app_argv)


def app_command(app_argv: list[str]) -> str:
    """The shell command textual-serve starts for each browser tab."""
    return shlex.join([sys.executable, "-m", "nnkit.tui.app", *app_argv])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:       # a host name other than localhost
        return False


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(options: ServeOptions) -> int:
    """Serve until Ctrl+C (exit status 0); 2 with a one-line message when
    textual-serve is missing or host:port cannot be bound."""
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError:
        print(f"nnkit-tui: error: --serve needs textual-serve: {INSTALL_HINT}", file=sys.stderr)
        return 2
    where = url(options.host, options.port)

    def ready(_aiohttp_message: str) -> None:
        if not is_loopback(options.host):
            # 0.0.0.0 / :: is no address a student can type: name one
            at = (f" at http://{socket.gethostname()}:{options.port} or this machine's IP "
                  "address" if options.host in ("0.0.0.0", "::") else "")
            print(f"nnkit-tui: warning: --host {options.host}: the app is reachable from the "
                  f"network{at}; anyone who opens it runs the app as you, on this machine "
                  "(no password, no encryption)", file=sys.stderr)
        print(f"nnkit-tui: serving on {where} (Ctrl+C stops)", flush=True)

    class NnkitServer(Server):
        sessions: set[asyncio.Task] = set()     # one handler task per open browser tab

        def serve(self, debug: bool = False) -> None:
            # as textual-serve's, but its ready line is ours, printed by
            # aiohttp once the port is bound (on_startup runs before the bind)
            self.debug = debug
            self.initialize_logging()
            web.run_app(self._make_app(), host=self.host, port=self.port, print=ready)

        async def on_startup(self, app) -> None:
            pass             # textual-serve prints its logo here

        async def handle_websocket(self, request):
            task = asyncio.current_task()
            self.sessions.add(task)
            try:
                return await super().handle_websocket(request)
            finally:
                self.sessions.discard(task)

        async def on_shutdown(self, app) -> None:
            # Ctrl+C: aiohttp alone waits for open tabs, then drops them;
            # cancelling a session makes textual-serve quit its app and close
            # the tab's websocket now (aiohttp's advice: close websockets here)
            for task in list(self.sessions):
                task.cancel()
            await asyncio.gather(*self.sessions, return_exceptions=True)

        async def handle_index(self, request):
            # the page's absolute URLs (its websocket, scripts) come from
            # public_url: from the address the browser used, they also work
            # bound to 0.0.0.0 (no await before they are built, so no race)
            self.public_url = f"{request.scheme}://{request.host}"
            return await super().handle_index(request)

    server = NnkitServer(app_command(options.app_argv), host=options.host,
                         port=options.port, title="nnkit-tui")
    try:
        server.serve()
    except OSError as exc:   # a port in use, an address not of this machine
        print(f"nnkit-tui: error: cannot serve on {where}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    return 0
