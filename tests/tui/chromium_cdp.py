"""A headless Chromium driven over the DevTools protocol, for the browser test
of `nnkit-tui --serve` (tests/tui/test_serve.py).

Raw CDP over aiohttp's websocket client: aiohttp comes with textual-serve, so
the test needs no package beyond the serve extra (Playwright would add a
driver and a browser download it must be told not to make). Only what the
test uses: open a page, press keys, read the terminal's text, take a PNG.

textual-serve draws the app with xterm.js on a WebGL/canvas layer, so the
text is not in the DOM. An init script keeps the page's xterm `Terminal` when
textual.js stores it (`this.terminal = new Terminal(...)`), and the text is
read from its buffer, row by row, as the browser shows it.
"""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import aiohttp

# Flags from the task's CI notes: without the background-networking ones
# Chromium stalls on a closed network.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Object.prototype gets a setter for `terminal`: the first assignment of an
# xterm Terminal (it has buffer.active) to any object's `terminal` is kept in
# window.__nnkitTerminal, and the object gets its own plain property as usual.
TERMINAL_HOOK = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true,
                                             enumerable: true});
    if (value && value.buffer && value.buffer.active && !window.__nnkitTerminal)
      window.__nnkitTerminal = value;
  },
});
"""

# the visible rows of the terminal, as text (null before the terminal exists)
READ_ROWS = """(() => {
  const t = window.__nnkitTerminal;
  if (!t) return null;
  const b = t.buffer.active, rows = [];
  for (let y = 0; y < t.rows; y++) rows.push(b.getLine(b.viewportY + y).translateToString(true));
  return rows;
})()"""

# key name -> (DOM key, DOM code, Windows virtual key code, text typed)
KEYS = {
    "n": ("n", "KeyN", 78, "n"),
    "p": ("p", "KeyP", 80, "p"),
    "right": ("ArrowRight", "ArrowRight", 39, None),
    "left": ("ArrowLeft", "ArrowLeft", 37, None),
    "home": ("Home", "Home", 36, None),
    "end": ("End", "End", 35, None),
}


class Chromium:
    """`async with Chromium(profile_dir) as browser:` a fresh headless browser
    with one page; closed (its whole process group) on exit."""

    def __init__(self, profile_dir: Path, *, executable: str = "chromium",
                 size: tuple[int, int] = (1280, 800), start_timeout: float = 120.0) -> None:
        self.profile_dir = Path(profile_dir)
        self.executable = executable
        self.size = size
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._id = 0

    async def __aenter__(self) -> "Chromium":
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        # its own process group: Debian's /usr/bin/chromium is a shell script,
        # and the browser's helper processes are killed with the group
        self.process = subprocess.Popen(
            [self.executable, *FLAGS, f"--user-data-dir={self.profile_dir}",
             "--remote-debugging-port=0", f"--window-size={self.size[0]},{self.size[1]}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            port = await self._devtools_port()
            self.session = aiohttp.ClientSession()
            async with self.session.get(f"http://127.0.0.1:{port}/json/list") as r:
                targets = await r.json()
            page = next(t for t in targets if t["type"] == "page")
            self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)

    async def _devtools_port(self) -> int:
        # Chromium writes the port it picked (--remote-debugging-port=0) here
        active = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.executable} exited with status "
                                   f"{self.process.returncode} before DevTools started")
            text = active.read_text() if active.exists() else ""
            if text.strip():
                return int(text.split()[0])
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.executable}: no DevTools port after {self.start_timeout} s")

    async def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events are dropped)."""
        self._id += 1
        await self.ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def open(self, url: str) -> None:
        # the init script runs in new documents only with the Page domain on
        await self.call("Page.enable")
        await self.call("Page.addScriptToEvaluateOnNewDocument", source=TERMINAL_HOOK)
        await self.call("Page.navigate", url=url)

    async def rows(self) -> list[str] | None:
        """The terminal's visible rows as text; None before it exists."""
        result = await self.call("Runtime.evaluate", expression=READ_ROWS, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, predicate: Callable[[str], bool], what: str,
                       timeout: float = 120.0) -> str:
        """The terminal's text once `predicate` holds for it. The timeout only
        keeps a broken page from hanging the run; it is not a measurement."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            rows = await self.rows()
            text = "\n".join(rows or [])
            if rows and predicate(text):
                return text
            await asyncio.sleep(0.1)
        raise AssertionError(f"the browser never showed {what}; it shows:\n{text}")

    async def press(self, key: str) -> None:
        """A key press as a user makes it: keyDown (with its text) and keyUp,
        into xterm's input element."""
        dom_key, code, vk, text = KEYS[key]
        await self.call("Runtime.evaluate",
                        expression="document.querySelector('.xterm-helper-textarea').focus()")
        down = dict(type="keyDown", key=dom_key, code=code, windowsVirtualKeyCode=vk)
        if text:
            down["text"] = text
        await self.call("Input.dispatchKeyEvent", **down)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=dom_key, code=code,
                        windowsVirtualKeyCode=vk)

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
