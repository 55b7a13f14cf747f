"""Monkey test of nnkit-tui (issue 12): a long seeded random key sequence.

Keys come from what the app offers at run time -- the app's BINDINGS, the
active bindings of whatever screen is on top (walkthrough, modals, lessons,
conv calculator, training, ...) -- plus typing keys (letters, digits, enter,
tab, arrows, backspace, escape) for the forms, so new screens and keys are
covered without editing this file. The sequence visits every registered
walkthrough, opens and closes every modal and screen reachable by a binding,
and resizes the terminal (down to 40×12) every ~150 keys.

Asserts: no exception (run_test re-raises one), the app answers a key within
a second at the end, no worker is left running after quit.

The monkey is a soak test (5,000 keys: five minutes and more on a 2-core
machine): marked slow, so the default `pytest` leaves it out and CI's
`pytest -m slow` stage runs it. The bugs it found have fast regression tests
of their own (below, and in the other tests/tui files).

    pytest -m slow tests/tui/test_monkey.py
    NNKIT_MONKEY_KEYS=100000 pytest -m slow -q -p no:cacheprovider tests/tui/test_monkey.py
    NNKIT_MONKEY_SEED=7 ...      another sequence (default 0)

A failure prints the seed and the last 40 keys, and writes the whole sequence
(keys, <open walkthrough>, <resize>) to a file under pytest's tmp_path.
"""
from __future__ import annotations

import asyncio
import os
import random
import time

import pytest

from nnkit.trace import registry
from nnkit.tui.app import NnkitApp

from tui_helpers import settle

# issue 12 asks for at least 5,000 keys in CI (~0.1 s a key: five minutes on a
# 2-core machine); the long runs take NNKIT_MONKEY_KEYS
KEYS = int(os.environ.get("NNKIT_MONKEY_KEYS", "5000"))
SEED = int(os.environ.get("NNKIT_MONKEY_SEED", "0"))
SIZES = [(40, 12), (50, 16), (80, 24), (100, 32), (132, 43), (60, 40), (200, 50)]
TYPING = (list("abcdefghijklmnopqrstuvwxyz0123456789.-_=+") +
          ["enter", "tab", "shift+tab", "up", "down", "left", "right", "backspace",
           "delete", "home", "end", "escape", "space", "pageup", "pagedown"])
# keys that end the app: pressed once, at the end
QUIT = {"q", "ctrl+q", "ctrl+c"}
# seconds the app may take to answer a key at the end (help screen on top)
ANSWER_WITHIN = 1.0


def send_key(app, key: str) -> None:
    """Post one key event as Pilot.press does, without its wait for an idle
    process after every key (a running check or training keeps the process
    busy, and that wait costs ~2 s per key): keys queue up as when a person
    mashes the keyboard. The caller syncs with a real pilot.press every
    SYNC_EVERY keys."""
    import unicodedata

    from textual import events
    from textual.app import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    original = REPLACED_KEYS.get(key, key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(original))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


SYNC_EVERY = 100


def offered_keys(app) -> list[str]:
    """Every key the app and the top screen bind right now (comma lists split)."""
    keys = set()
    for b in list(app.BINDINGS) + list(getattr(app.screen, "BINDINGS", [])):
        key = b.key if hasattr(b, "key") else b[0]
        keys.update(k.strip() for k in key.split(","))
    keys.update(app.active_bindings)
    return sorted(k for k in keys if k and k not in QUIT)


def modal_keys(app) -> list[str]:
    """The app-level and main-screen keys that open a screen or a modal."""
    keys = []
    for b in list(app.BINDINGS) + list(app.main.BINDINGS):
        if b.action in ("lessons", "conv_calc", "training", "config", "pick", "help", "export"):
            keys.append(b.key.split(",")[0])
    return keys


async def back_to_main(pilot, log):
    for _ in range(6):
        if pilot.app.screen is pilot.app.main:
            return
        log.append("escape")
        await pilot.press("escape")


def guard_option_list_paging(monkeypatch):
    """Textual 8.2.8 bug (reported in issue 12, not nnkit's): PageUp/PageDown on an
    OptionList whose lines are not laid out yet (a Select's overlay just opened,
    the command palette mid-refresh) raises KeyError: 0 in OptionList._move_page
    and kills the app. Patched here, for this test only, so the monkey keeps
    looking for nnkit's own failures; test_textual_option_list_paging_bug shows it."""
    from textual.widgets import OptionList
    original = OptionList._move_page

    def move_page(self, direction):
        if (self.highlighted or 0) not in self._index_to_line:
            return
        return original(self, direction)
    monkeypatch.setattr(OptionList, "_move_page", move_page)


def palette_without_quit(monkeypatch):
    """The command palette offers Textual's "Quit" system command: random
    letters typed into it and Enter may run it, a real quit asked for by the
    keys (seen at key 1,018 of seed 0: 'ctrl+p', ..., 'enter'). The monkey quits
    once, at the end; drop that one command for this test."""
    original = NnkitApp.get_system_commands

    def commands(self, screen):
        return (c for c in original(self, screen) if c.title != "Quit")
    monkeypatch.setattr(NnkitApp, "get_system_commands", commands)


@pytest.mark.slow
async def test_monkey(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)        # the export modal takes typed (relative) paths
    guard_option_list_paging(monkeypatch)
    palette_without_quit(monkeypatch)
    rnd = random.Random(SEED)
    app = NnkitApp(export_dir=tmp_path)
    log: list[str] = []
    names = list(registry())
    pressed = 0
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            await settle(pilot)
            segment = max(200, KEYS // max(1, 2 * len(names)))
            w = 0
            while pressed < KEYS:
                # each segment: the next walkthrough, every modal opened and closed
                await back_to_main(pilot, log)
                name = names[w % len(names)]
                w += 1
                log.append(f"<open {name}>")
                app.main.open_walkthrough(name)
                for key in modal_keys(app):
                    log += [key, "escape"]
                    await pilot.press(key)
                    await pilot.press("escape")
                    await back_to_main(pilot, log)
                    pressed += 2
                for _ in range(segment):
                    r = rnd.random()
                    if r < 0.007:
                        size = rnd.choice(SIZES)
                        log.append(f"<resize {size}>")
                        await pilot.resize_terminal(*size)
                        continue
                    keys = offered_keys(app) if r < 0.75 else [k for k in TYPING
                                                                if k not in QUIT]
                    key = rnd.choice(keys)
                    log.append(key)
                    pressed += 1
                    assert app.is_running, ("the app quit on a key other than q / ctrl+q",
                                            getattr(app, "_exception", None),
                                            [type(s).__name__ for s in app.screen_stack])
                    # Textual 8.2.8's command palette crashes (NoMatches 'CommandList'
                    # in its _gather_commands worker) when it is closed while a search
                    # is still gathering: a Textual race, reported in issue 12; keys
                    # typed into the palette wait for it (pilot.press) instead
                    palette = type(app.screen).__name__ == "CommandPalette"
                    if key == "ctrl+p":
                        # drain the keys still queued for the screen below first: one
                        # that reaches the new palette's list mid-refresh (a page key)
                        # trips the Textual race noted above
                        for _ in range(3):
                            await pilot.pause()
                    if palette or key == "ctrl+p" or pressed % SYNC_EVERY == 0:
                        await pilot.press(key)        # waits until the app has caught up
                        for _ in range(100):          # the palette is pushed a bit later
                            if key != "ctrl+p" or type(app.screen).__name__ == \
                                    "CommandPalette":
                                break
                            await pilot.pause(0.01)
                    else:
                        send_key(app, key)
                        await asyncio.sleep(0.002)
                    if pressed >= KEYS:
                        break
            # still answering: a key opens the help within a second
            for _ in range(5):
                await pilot.press("escape")
                await back_to_main(pilot, log)
                await settle(pilot)
                if app.screen is app.main:
                    break
            assert app.screen is app.main, app.screen
            # time to the help screen on top, not to pilot.press's return: that
            # also waits for the whole app to go idle (a repaint at 200×50 on a
            # loaded 2-core machine took over a second: a flaky TimeoutError)
            t0 = time.perf_counter()
            send_key(app, "question_mark")
            while (type(app.screen).__name__ != "HelpScreen"
                   and time.perf_counter() - t0 < ANSWER_WITHIN):
                await asyncio.sleep(0.01)
            answered = time.perf_counter() - t0
            assert type(app.screen).__name__ == "HelpScreen", (app.screen, answered)
            await settle(pilot)
            await pilot.press("escape")
            log.append("q")
            await pilot.press("q")
            await pilot.pause()
    except BaseException:
        path = tmp_path / f"monkey-seed{SEED}-keys.txt"
        path.write_text("\n".join(log) + "\n")
        print(f"\nmonkey seed {SEED}, {pressed} keys; the whole sequence in {path}; "
              f"last keys: {log[-40:]}")
        raise
    print(f"\nmonkey seed {SEED}: {pressed} keys, {sum(k.startswith('<resize') for k in log)} "
          f"resizes, {len(names)} walkthroughs")
    assert app.return_code is not None or not app.is_running
    running = [wk for wk in app.workers if wk.is_running]
    assert not running, f"workers left running after quit: {running}"


async def test_double_enter_in_a_modal_is_not_a_crash(tmp_path, monkeypatch):
    """Found by the monkey: Enter twice before the first dismiss lands (keys
    queue while a check runs) made the second Input.Submitted / OptionSelected
    dismiss a modal no longer on the stack: ScreenStackError, the app died.
    Config (c), walkthrough picker (w) and export (e) modals, and the config's
    Cancel button: one app for the four (an app start is most of the cost);
    each case begins on the main screen and must leave the app running."""
    monkeypatch.chdir(tmp_path)        # Enter in the export modal exports here
    app = NnkitApp()
    async with app.run_test(size=(100, 32)) as pilot:
        await settle(pilot)
        for opener in ("c", "w", "e", "cancel"):
            await pilot.press("c" if opener == "cancel" else opener)
            assert app.screen is not app.main, opener
            if opener == "cancel":
                app.screen.query_one("#cancel").focus()
            send_key(app, "enter")
            send_key(app, "enter")
            await settle(pilot)
            for _ in range(3):        # a modal still open (the config's Cancel): close it
                if app.screen is app.main:
                    break
                await pilot.press("escape")
                await settle(pilot)
            assert app.is_running and app.screen is app.main, (opener, app.screen)


def test_textual_option_list_paging_bug():
    """The Textual bug the monkey works around: an OptionList that has options
    but no laid-out lines (height 0, before its first render) raises KeyError
    on page down. Fails (xpass) once Textual fixes it: then drop the guard."""
    from textual.widgets import OptionList
    ol = OptionList("a", "b")
    ol.highlighted = 0
    with pytest.raises(KeyError):
        ol._move_page(1)
