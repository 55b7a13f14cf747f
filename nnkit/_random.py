"""The library's random generator: initial weights, dropout masks, shuffles.

One generator for everything random that the caller did not seed, so two
layers of the same shape start different (symmetric units never separate)
while a whole program stays reproducible: ``nk.seed(n)`` resets it, like
``torch.manual_seed``. An explicit ``seed=`` or ``rng=`` argument still wins.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def seed(n: int | None) -> np.random.Generator:
    """Reset the library generator (None: fresh OS entropy); returns it."""
    global _generator
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))):
        raise TypeError(f"seed: expected an int or None, got {type(n).__name__} {n!r}")
    if n is not None and n < 0:
        raise ValueError(f"seed: expected an int >= 0 or None, got {n}")
    _generator = np.random.default_rng(n)
    return _generator


def generator(seed: int | None = None, rng: np.random.Generator | None = None
              ) -> np.random.Generator:
    """rng if given, else a generator from `seed` if given, else the library's."""
    if rng is not None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator or None, "
                            f"got {type(rng).__name__}")
        return rng
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed: expected an int or None, got {type(seed).__name__} {seed!r}")
        if seed < 0:
            raise ValueError(f"seed: expected an int >= 0 or None, got {seed}")
        return np.random.default_rng(seed)
    return _generator
