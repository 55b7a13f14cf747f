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
