"""The child process of `nnkit check`: loads a student's derivation file and
calls its formulas on request, so nothing in that file (an exception,
`sys.exit()`, `os._exit()`, a crash, an endless loop, a stray `print` or
`input`) reaches the checker. Run by path (`python _derivation_worker.py
FILE`), it imports only the standard library and NumPy, never nnkit.

Protocol, over the process's original stdin/stdout (the student's code gets
/dev/null for both): each message is an 8-byte little-endian length and a
pickle. After loading, the worker sends {"ok": True, "walkthrough": ...,
"functions": {name: [params], ...}, "var_kw": [names]} or {"ok": False,
"error": ..., "line": ...}; then for each request (name, kwargs) it answers
("ok", result) | ("todo",) | ("error", message). kwargs values tagged
("__steps__", {t: array}, zeros_shape) become `Steps` here.
"""
from __future__ import annotations

import inspect
import os
import pickle
import struct
import sys
import traceback

import numpy as np


class Steps(dict):
    """A time-indexed node's values (or gradients) by step: h[t], h[t - 1].

    Values: a step that does not exist raises KeyError naming the steps that
    do. Gradients (zeros_shape set): a step that does not exist is 0 (the
    loss does not depend on it), so G[t] + da[t + 1] @ Wh works at t = T."""

    def __init__(self, items, zeros_shape=None):
        super().__init__(items)
        self._zeros = zeros_shape

    def __missing__(self, t):
        if self._zeros is not None:
            return np.zeros(self._zeros)
        have = sorted(self)
        raise KeyError(f"step {t!r} does not exist (steps {have[0]}..{have[-1]})"
                       if have else f"step {t!r} does not exist")


def tag(value):
    """A kwargs value as sent to the worker (Steps travel as tagged dicts)."""
    if isinstance(value, Steps):
        return ("__steps__", dict(value), value._zeros)
    return value


def untag(value):
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "__steps__":
        return Steps(value[1], value[2])
    return value


def formulas(namespace: dict, module_name: str) -> dict:
    """The public top-level functions a derivation file defines (its formulas
    and anything else it did not mark private with a leading underscore)."""
    out = {}
    for name, obj in namespace.items():
        if name.startswith("_") or not inspect.isfunction(obj):
            continue
        if getattr(obj, "__module__", None) != module_name:
            continue          # imported, not defined here (from numpy import ...)
        out[name] = obj
    return out


def signature(fn) -> tuple[list[str], bool, list[str]]:
    """(parameter names, whether it takes **kwargs, the names with a default:
    bound when available, else left to their default)."""
    params = inspect.signature(fn).parameters.values()
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return ([p.name for p in named], any(p.kind == p.VAR_KEYWORD for p in params),
            [p.name for p in named if p.default is not p.empty])


def call(fn, kwargs: dict, path: str | None = None):
    """One formula call as a protocol answer."""
    try:
        result = fn(**{k: untag(v) for k, v in kwargs.items()})
    except NotImplementedError:
        return ("todo",)
    except SystemExit as e:
        return ("error", f"called sys.exit({e.code!r})")
    except BaseException as e:          # noqa: BLE001  (the student's code: anything)
        return ("error", describe(e, path))
    if isinstance(result, np.ndarray) or result is None or np.isscalar(result):
        return ("ok", result)
    try:                                 # a list, a tuple, a NumPy scalar: as sent
        pickle.dumps(result)
        return ("ok", result)
    except Exception:                    # noqa: BLE001
        return ("ok", f"<unpicklable {type(result).__name__}>")


def describe(e: BaseException, path: str | None) -> str:
    """'ZeroDivisionError: division by zero (line 12)': the line in the student's file."""
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if path is None or os.path.abspath(frame.filename) == os.path.abspath(path):
            line = frame.lineno
    msg = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    return msg + (f" (line {line})" if line is not None else "")


# ------------------------------------------------------------------ the child
def _send(out, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(struct.pack("<Q", len(data)) + data)
    out.flush()


def _recv(inp):
    head = inp.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(inp.read(n))


def main(path: str) -> None:
    # the protocol keeps the original pipes; the student's code gets /dev/null
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    sys.stdin = open(os.devnull)
    sys.stdout = open(os.devnull, "w")
    import builtins
    builtins.input = lambda prompt="": ""     # a stray input() reads an empty line
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    import runpy
    name = "__nnkit_derivation__"
    try:
        ns = runpy.run_path(path, run_name=name)
    except SyntaxError as e:
        _send(proto_out, {"ok": False, "error": f"SyntaxError: {e.msg}", "line": e.lineno})
        return
    except SystemExit as e:
        _send(proto_out, {"ok": False, "error": f"the file called sys.exit({e.code!r}) "
                          "when imported", "line": None})
        return
    except BaseException as e:          # noqa: BLE001
        _send(proto_out, {"ok": False, "error": describe(e, path), "line": None})
        return
    fns = formulas(ns, name)
    sigs = {n: signature(f) for n, f in fns.items()}
    walkthrough = ns.get("WALKTHROUGH")
    _send(proto_out, {"ok": True, "walkthrough": walkthrough if isinstance(walkthrough, str)
                      else None, "functions": {n: s[0] for n, s in sigs.items()},
                      "var_kw": [n for n, s in sigs.items() if s[1]],
                      "optional": {n: s[2] for n, s in sigs.items()}})
    while True:
        msg = _recv(proto_in)
        if msg is None:
            return
        fname, kwargs = msg
        _send(proto_out, call(fns[fname], kwargs, path))


if __name__ == "__main__":
    main(sys.argv[1])
