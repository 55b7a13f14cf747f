"""Helpers for driving nnkit-tui with the Pilot.

`settle` waits on state, never on the clock: until no worker is running and
the messages the workers posted have been handled."""
from __future__ import annotations

SIZE = (100, 32)


async def settle(pilot, rounds: int = 200) -> None:
    app = pilot.app
    for _ in range(rounds):
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.main
        # not mounted yet: its first build has not even started
        busy = (not screen.is_mounted or any(w.is_running for w in app.workers)
                or screen.building or screen.checking)
        if not busy:
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
    raise AssertionError("the app did not settle")


def screen_lines(screen) -> list[str]:
    """What `screen` shows, one string per terminal line, as its compositor
    draws it (the same strips a snapshot is made of)."""
    return ["".join(seg.text for seg in strip) for strip in screen._compositor.render_strips()]


def screen_text(screen) -> str:
    return "\n".join(screen_lines(screen))


async def shown(pilot, *texts: str, screen=None, rounds: int = 500) -> None:
    """Wait until every one of `texts` is drawn on `screen` (default: the
    current one): on what the compositor draws, never on the clock."""
    for _ in range(rounds):
        await pilot.pause()
        target = screen if screen is not None else pilot.app.screen
        drawn = screen_text(target)
        if all(t in drawn for t in texts):
            return
    missing = [t for t in texts if t not in drawn]
    raise AssertionError(f"never drawn: {missing}\n{drawn}")
