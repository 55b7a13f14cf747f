"""Checkpoints: `nk.save(obj, path)` / `nk.load(path)` to one .npz, no pickle.

    nk.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
             "epoch": 3}, "run.npz")
    ck = nk.load("run.npz")
    model.load_state_dict(ck["model"]); opt.load_state_dict(ck["optimizer"])

`obj` is a dict (nested freely) of arrays, numbers, strings, None, and lists
or tuples of those; nested dicts are flattened to dotted keys ("model.0.W",
"optimizer.state.0.W.m") and written with np.savez; `load` reads with
allow_pickle=False and nests the keys again at every dot. A model's own keys
have dots ("0.W"), so after `load` a state dict is nested ({"0": {"W": ...}});
every `load_state_dict` takes either form (it flattens what it gets). Lists
come back as lists, tuples as lists, numbers and strings as Python scalars,
arrays as arrays: the record of which key was which is one extra string
array in the file ("__nnkit_kinds__").
"""
from __future__ import annotations

import os

import numpy as np

__all__ = ["save", "load", "flatten", "unflatten"]

_KINDS = "__nnkit_kinds__"


def flatten(obj, prefix: str = "", kinds: dict | None = None) -> dict:
    """{dotted key: leaf} of a nested dict/list; `kinds` (if given) records
    each leaf's and each list's kind for `unflatten`."""
    out: dict = {}

    def walk(x, key):
        if isinstance(x, dict):
            if kinds is not None and key and not x:
                kinds[key] = "emptydict"
            for k, y in x.items():
                k = str(k)
                if not k:
                    raise ValueError(f"{key or 'obj'}: an empty key cannot be saved")
                walk(y, f"{key}.{k}" if key else k)
        elif isinstance(x, (list, tuple)) and not (x and all(isinstance(e, str) for e in x)):
            if kinds is not None:
                kinds[key] = "list"
            for i, y in enumerate(x):
                walk(y, f"{key}.{i}" if key else str(i))
        else:
            if not key:
                raise TypeError(f"obj: expected a dict, got {type(x).__name__}")
            out[key] = x
            if kinds is not None:
                kinds[key] = _leaf_kind(key, x)

    walk(obj, prefix)
    return out


def _leaf_kind(key, x) -> str:
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{key}: an object array cannot be saved without pickle")
        return "array"
    if x is None:
        return "none"
    if isinstance(x, (bool, np.bool_)):
        return "bool"
    if isinstance(x, (int, np.integer)):
        return "int"
    if isinstance(x, (float, np.floating)):
        return "float"
    if isinstance(x, str):
        return "str"
    if isinstance(x, (list, tuple)):
        return "strlist"
    raise TypeError(f"{key}: expected an array, a number, a string or None, got "
                    f"{type(x).__name__}")


def unflatten(flat: dict) -> dict:
    """The nested dict of {dotted key: value}: a dot opens a level."""
    root: dict = {}
    for key, val in flat.items():
        parts = key.split(".")
        node = root
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise ValueError(f"{key}: {p!r} is both a value and a level")
            node = nxt
        node[parts[-1]] = val
    return root


def save(obj, path) -> None:
    """Write obj (a nested dict of arrays, numbers, strings, None, lists) to one .npz."""
    if not isinstance(obj, dict):
        raise TypeError(f"obj: expected a dict (a state dict or a dict of them), got "
                        f"{type(obj).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    kinds: dict = {}
    flat = flatten(obj, "", kinds)
    arrays = {}
    for key, x in flat.items():
        k = kinds[key]
        if k == "none":
            arrays[key] = np.zeros(0)
        elif k == "strlist":
            arrays[key] = np.array(list(x), dtype=str)
        else:
            arrays[key] = np.asarray(x)
    if _KINDS in arrays:
        raise ValueError(f"obj: the key {_KINDS!r} is nnkit's own")
    arrays[_KINDS] = np.array([f"{k}\t{v}" for k, v in kinds.items()], dtype=str)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load(path) -> dict:
    """Read what `save` wrote: the nested dict (allow_pickle=False)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    kinds = {}
    if _KINDS in data:
        for line in data.pop(_KINDS).tolist():
            k, _, kind = line.rpartition("\t")
            kinds[k] = kind
    flat = {}
    for key, a in data.items():
        kind = kinds.get(key, "array")
        if kind == "none":
            flat[key] = None
        elif kind == "strlist":
            flat[key] = [str(s) for s in a.tolist()]
        elif kind in ("int", "float", "bool", "str"):
            flat[key] = a.item()
        else:
            flat[key] = a
    for key, kind in kinds.items():
        if kind in ("emptydict", "list"):
            flat.setdefault(key + ".__empty__", None)
    tree = unflatten(flat)

    def fix(node, key):
        if isinstance(node, dict):
            node.pop("__empty__", None)
            for k in list(node):
                node[k] = fix(node[k], f"{key}.{k}" if key else k)
            if kinds.get(key) == "list":
                return [node[str(i)] for i in range(len(node))]
        return node

    return fix(tree, "")


# ------------------------------------------------------ layers' state dicts
def layer_state_dict(layer) -> dict:
    sd = {name: p.copy() for name, p in layer.params.items()}
    for name, b in layer.named_buffers():
        sd[name] = b.copy()
    return sd


def load_layer_state_dict(layer, state_dict, strict: bool = True) -> None:
    if not isinstance(state_dict, dict):
        raise TypeError(f"state_dict: expected a dict of arrays, got "
                        f"{type(state_dict).__name__}")
    flat = flatten(state_dict)
    targets = dict(layer.params)
    targets.update(dict(layer.named_buffers()))
    staged = []
    for key, dst in targets.items():
        if key not in flat:
            raise KeyError(f"state_dict[{key!r}]: missing (expected an array of shape "
                           f"{dst.shape} for {type(layer).__name__})")
        val = flat[key]
        try:
            arr = np.asarray(val)
        except Exception:  # noqa: BLE001
            arr = None
        if arr is None or arr.dtype.kind not in "fiu":
            raise TypeError(f"state_dict[{key!r}]: expected a numeric array, got "
                            f"{type(val).__name__}")
        if arr.shape != dst.shape:
            raise ValueError(f"state_dict[{key!r}]: expected shape {dst.shape}, got {arr.shape}")
        staged.append((dst, arr))
    if strict:
        extra = sorted(set(flat) - set(targets))
        if extra:
            raise KeyError(f"state_dict[{extra[0]!r}]: unexpected key (strict=True; "
                           f"{type(layer).__name__} has {sorted(targets)})")
    for dst, arr in staged:           # all checked first: a refused dict changes nothing
        np.copyto(dst, arr, casting="unsafe")
