"""nnkit-tui --serve: the app in a browser through textual-serve.

Three layers: the command line (no server), the server as a process (its URL,
its page, the app over its websocket, Ctrl+C), and a headless Chromium that
opens the page, steps a walkthrough with keys and reads what the terminal
shows. The server tests skip without textual-serve (`pip install -e
".[serve]"`), the browser test also without `chromium`;
NNKIT_REQUIRE_BROWSER=1 (CI) turns those skips into failures.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from nnkit.trace import Trace
from nnkit.tui import serve
from nnkit.tui.app import _parser, main, parse_command_line

REQUIRE_BROWSER = os.environ.get("NNKIT_REQUIRE_BROWSER", "") not in ("", "0")
ROOT = Path(__file__).resolve().parents[2]
CORRECT = ROOT / "tests" / "derivation_check" / "files" / "bn_relu.py"
RIGHT_DV = "return (dYhat * (Y - m)).sum(axis=0) * -0.5 * (v + eps) ** -1.5"
WRONG_DV = "return (dYhat * (Y - m)).sum(axis=0) * -1.0 * (v + eps) ** -1.5"   # ×2


def need(condition: bool, reason: str) -> None:
    """Skip without `condition`; under NNKIT_REQUIRE_BROWSER=1 fail instead."""
    if not condition:
        (pytest.fail if REQUIRE_BROWSER else pytest.skip)(reason)


def have_textual_serve() -> bool:
    try:
        import textual_serve.server  # noqa: F401
    except ImportError:
        return False
    return True


def need_textual_serve() -> None:
    need(have_textual_serve(), 'textual-serve is not installed: pip install -e ".[serve]"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the command line ---------------------------------------------------------

def test_the_serve_flags_are_taken_out_of_the_apps_command_line():
    argv = ["rnn", "--serve", "-B", "8", "--port", "8123", "--set", "T=5", "--host=0.0.0.0"]
    options = serve.split_argv(argv)
    assert (options.host, options.port) == ("0.0.0.0", 8123)
    assert options.app_argv == ["rnn", "-B", "8", "--set", "T=5"]
    # the served app parses to the same walkthrough and configuration
    assert parse_command_line(options.app_argv) == parse_command_line(argv)


def test_defaults_and_no_serve():
    options = serve.split_argv(["--serve"])
    assert (options.host, options.port, options.app_argv) == ("127.0.0.1", 8000, [])
    assert serve.split_argv(["rnn", "-B", "8"]) is None


def test_an_abbreviation_names_the_same_flag_in_both_parsers():
    # nnkit-tui's parser accepts `--ser --po 9000`; had the split missed
    # them, the served app would itself serve
    args = _parser().parse_args(["--ser", "--po", "9000"])
    assert args.serve and args.port == 9000
    options = serve.split_argv(["--ser", "--po", "9000"])
    assert (options.port, options.app_argv) == (9000, [])


def test_the_command_textual_serve_runs_is_this_python_with_the_same_arguments():
    argv = ["--check", "my derivation.py", "-B", "8"]
    assert shlex.split(serve.app_command(argv)) == [sys.executable, "-m", "nnkit.tui.app", *argv]


@pytest.mark.parametrize("argv, message", [
    (["--port", "9000"], "--port: expected only with --serve, got --port 9000 without it"),
    (["--host", "0.0.0.0"], "--host: expected only with --serve, got --host 0.0.0.0 without it"),
    (["--serve", "--port", "0"], "--port: expected a port in 1..65535, got 0"),
    (["--serve", "--port", "65536"], "--port: expected a port in 1..65535, got 65536"),
    (["--serve", "--host", ""], "--host: expected an address or host name, got ''"),
    # the app's own options are checked before anything is served
    (["--serve", "--check", "no/such/file.py"], "--check: expected a derivation file"),
])
def test_a_bad_serve_command_line_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnkit-tui: error: {message}") and err.count("\n") == 1


def test_without_textual_serve_one_line_says_what_to_install(monkeypatch, capsys):
    # None in sys.modules makes the import fail, as when it is not installed
    monkeypatch.setitem(sys.modules, "textual_serve", None)
    monkeypatch.setitem(sys.modules, "textual_serve.server", None)
    assert main(["--serve"]) == 2
    out, err = capsys.readouterr()
    assert err == ('nnkit-tui: error: --serve needs textual-serve: pip install -e ".[serve]"\n')
    assert out == ""


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("teacher.lan", False),
])
def test_loopback(host, loopback):
    assert serve.is_loopback(host) == loopback


def test_a_port_in_use_exits_2_with_one_line(capsys):
    need_textual_serve()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--serve", "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"nnkit-tui: error: cannot serve on http://127.0.0.1:{port}: ")
    assert "address already in use" in err.lower() and err.count("\n") == 1
    assert out == ""            # no URL announced for a server that never listened


@pytest.fixture
def recorded_server(monkeypatch):
    """aiohttp's run_app recording where it would bind, then announcing itself
    ready as after a bind, instead of serving."""
    need_textual_serve()
    from aiohttp import web
    calls = []

    def run_app(app, *, host, port, print, **kwargs):
        app.close()                 # the coroutine making the web app, never run
        calls.append((host, port))
        print("======== Running on ... ========")
    monkeypatch.setattr(web, "run_app", run_app)
    return calls


@pytest.mark.parametrize("host, warned", [(None, False), ("localhost", False),
                                          ("0.0.0.0", True)])
def test_any_host_but_this_machine_is_warned_about(recorded_server, host, warned, capsys):
    argv = ["rnn", "-B", "3", "--serve", "--port", "8123"] + (["--host", host] if host else [])
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert recorded_server == [(host or "127.0.0.1", 8123)]
    assert out == f"nnkit-tui: serving on http://{host or '127.0.0.1'}:8123 (Ctrl+C stops)\n"
    if warned:
        assert err.startswith(f"nnkit-tui: warning: --host {host}: the app is reachable from "
                              "the network") and err.count("\n") == 1
    else:
        assert err == ""


# -- the server as a process ----------------------------------------------------

def start_server(*argv: str, port: int) -> subprocess.Popen:
    """`nnkit-tui ARGV --serve --port PORT` in a process of its own, once it
    has printed its URL."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, "-m", "nnkit.tui.app", *argv, "--serve",
                             "--port", str(port)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    if first != f"nnkit-tui: serving on http://127.0.0.1:{port} (Ctrl+C stops)\n":
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the server did not start: {first}{out}{err}")
    return proc


def ctrl_c(proc: subprocess.Popen) -> None:
    """Ctrl+C, once: a second one during the shutdown exits 1."""
    if not getattr(proc, "interrupted", False):
        proc.interrupted = True
        proc.send_signal(signal.SIGINT)


def stop_server(proc: subprocess.Popen) -> tuple[int, str]:
    """Ctrl+C; (exit status, stderr). The timeout only keeps a hung server
    from hanging the run."""
    ctrl_c(proc)
    try:
        _, err = proc.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"Ctrl+C did not stop the server:\n{err}")
    return proc.returncode, err


def page(port: int, host_header: str | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/")
    if host_header:
        request.add_header("Host", host_header)
    with urllib.request.urlopen(request, timeout=60) as r:
        return r.read().decode()


async def ctrl_c_with_a_tab_open(proc: subprocess.Popen, port: int, needle: bytes):
    """Open the app's websocket as a tab does, read until `needle` is drawn,
    press Ctrl+C with the tab still open. (what the app drew, (type, data)
    of the message that ended the websocket)"""
    import aiohttp
    got = b""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{port}/ws?width=100&height=32") as ws:
            while needle not in got:
                msg = await asyncio.wait_for(ws.receive(), 120)
                if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    raise AssertionError(f"websocket {msg.type} before {needle!r}: {got[-500:]!r}")
                if msg.type == aiohttp.WSMsgType.BINARY:
                    got += msg.data
            ctrl_c(proc)
            # the server ends the session itself; the timeout only guards
            # against a hang
            while True:
                msg = await asyncio.wait_for(ws.receive(), 45)
                if msg.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
                    return got, (msg.type, msg.data)


def test_the_server_prints_its_url_serves_the_app_and_stops_on_ctrl_c():
    need_textual_serve()
    import aiohttp
    port = free_port()
    proc = start_server("rnn", "--seed", "7", port=port)
    try:
        # the page's websocket URL is the address the browser used
        assert f'data-session-websocket-url="ws://127.0.0.1:{port}/ws"' in page(port)
        assert ('data-session-websocket-url="ws://teacher.lan:8000/ws"'
                in page(port, "teacher.lan:8000"))
        shown, ending = asyncio.run(ctrl_c_with_a_tab_open(proc, port, b"seed=7"))
    finally:
        status, err = stop_server(proc)
    # the app behind the websocket is the one the command line named
    assert b"rnn" in shown
    # the server closed the tab's session itself (a close frame, 1000: normal),
    # not aiohttp dropping the connection after its wait (CLOSED, no frame)
    assert ending == (aiohttp.WSMsgType.CLOSE, 1000)
    assert status == 0 and "Traceback" not in err, err


# -- a browser ---------------------------------------------------------------------

def test_a_browser_steps_a_walkthrough(tmp_path):
    """Served with options and a derivation file; Chromium loads the page,
    steps forward with n / → and back with Home, and reads the terminal."""
    need_textual_serve()
    chromium = shutil.which("chromium")
    need(chromium is not None, "no chromium on PATH (Debian: apt-get install -y chromium)")
    from chromium_cdp import Chromium

    planted = tmp_path / "bn_relu.py"
    text = CORRECT.read_text()
    assert RIGHT_DV in text
    planted.write_text(text.replace(RIGHT_DV, WRONG_DV))
    # what the walkthrough is, from the trace itself, not from the app
    trace = Trace("bn-relu", B=6, seed=3)
    steps = trace.forward_steps()
    first, fourth, n = steps[0], steps[3], len(steps)

    port = free_port()
    proc = start_server("bn-relu", "-B", "6", "--seed", "3", "--check", str(planted), port=port)
    try:
        async def drive() -> tuple[str, str, str]:
            async with Chromium(tmp_path / "profile", executable=chromium) as browser:
                await browser.open(f"http://127.0.0.1:{port}/")
                start = await browser.wait_for(
                    lambda t: f"forward 1/{n} {first.key}" in t and first.formula in t
                    and "1 FAIL" in t, "the first node with the derivation checked")
                for key in ("n", "right", "n"):
                    await browser.press(key)
                stepped = await browser.wait_for(
                    lambda t: f"forward 4/{n} {fourth.key}" in t and fourth.formula in t,
                    f"the fourth node {fourth.key}")
                await browser.press("home")
                back = await browser.wait_for(
                    lambda t: f"forward 1/{n} {first.key}" in t and first.formula in t,
                    "the first node again")
                shot = await browser.screenshot(tmp_path / "nnkit-serve.png")
                print(f"screenshot: {shot}")
                return start, stepped, back
        start, stepped, back = asyncio.run(drive())
    finally:
        status, err = stop_server(proc)
    # the served app has the command line's options (B=6, seed=3) ...
    assert "B=6" in start and "seed=3" in start
    # ... and its derivation file: the planted dv (×2) fails, the other ten pass
    assert "your derivation bn_relu.py: 10 PASS 1 FAIL" in start
    # the step list (the left 20 columns) marks ∂L/∂v failed
    steps_column = [line[:20].split() for line in start.splitlines()]
    assert [row[:2] for row in steps_column if "∂L/∂v" in row] == [["✗", "∂L/∂v"]]
    assert first.formula not in stepped
    assert back.splitlines()[0] == start.splitlines()[0]
    assert (tmp_path / "nnkit-serve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert status == 0 and "Traceback" not in err, err
