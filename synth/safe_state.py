"""Save fitted objects as plain JSON + ``.npz``, and load them without unpickling.

A fitted RDT ``HyperTransformer`` is a tree of Python objects. Pickle would save it in
one call, but loading a pickle runs whatever code the file names, so a model folder from
an untrusted source could execute anything. Here the tree is written as JSON (structure,
scalars) plus one NumPy ``.npz`` (arrays, loaded with ``allow_pickle=False``), and on
load only classes from an explicit allow-list are rebuilt, by setting their attributes
(their ``__init__`` is not run). skops.io does the same in principle but cannot yet
represent RDT's ``None`` dictionary keys.
"""

from __future__ import annotations

import importlib
import io
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from synth.errors import ModelError

#: module prefixes whose classes may be rebuilt on load
ALLOWED_MODULES = ("rdt.transformers.", "rdt.hyper_transformer", "synth.rdt_fixes", "sklearn.mixture.")


def dumps(obj: Any) -> tuple[str, bytes]:
    """Encode ``obj`` as (JSON text, ``.npz`` bytes)."""
    arrays = _Memo({})
    tree = _encode(obj, arrays)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return json.dumps(tree, allow_nan=False), buffer.getvalue()


def loads(text: str, npz: bytes, allowed_modules: Iterable[str] = ALLOWED_MODULES) -> Any:
    """Rebuild an object saved with :func:`dumps`; classes outside ``allowed_modules`` are refused."""
    try:
        with np.load(io.BytesIO(npz), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except ValueError as exc:  # an object array: it would need unpickling
        raise ModelError(f"saved arrays refused: {exc}") from None
    return _decode(json.loads(text), _Memo(arrays), tuple(allowed_modules))


class _Memo(dict):
    """Arrays by key, plus the objects seen so far: an object shared by two owners stays shared."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        super().__init__(arrays)
        self.objects: dict[int, Any] = {}


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__objarray__": [_encode(v, arrays) for v in value.tolist()]}
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, np.dtype):
        return {"__dtype__": value.str if value.kind != "O" else "object"}
    if isinstance(value, pd.api.extensions.ExtensionDtype):
        return {"__pddtype__": str(value)}
    if isinstance(value, pd.Timestamp):
        return {"__timestamp__": value.isoformat()}
    if isinstance(value, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value.get_state()
        return {"__randomstate__": [name, _encode(keys, arrays), pos, has_gauss, cached]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"__set__": [_encode(v, arrays) for v in sorted(value, key=repr)]}
    if isinstance(value, list):
        return [_encode(v, arrays) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    cls = type(value)
    qualified = f"{cls.__module__}.{cls.__qualname__}"
    if not cls.__module__.startswith(ALLOWED_MODULES):
        raise TypeError(f"cannot save an object of type {qualified}")
    if id(value) in arrays.objects:
        return {"__ref__": arrays.objects[id(value)]}
    arrays.objects[id(value)] = len(arrays.objects)
    return {"__object__": qualified, "state": _encode(dict(vars(value)), arrays)}


def _decode(node: Any, arrays: dict[str, np.ndarray], allowed: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_decode(v, arrays, allowed) for v in node]
    if not isinstance(node, dict):
        return node
    (tag, payload), *rest = node.items()
    if tag == "__float__":
        return float(payload)
    if tag == "__array__":
        return arrays[payload]
    if tag == "__objarray__":
        return np.array([_decode(v, arrays, allowed) for v in payload], dtype=object)
    if tag == "__dtype__":
        return np.dtype(object) if payload == "object" else np.dtype(payload)
    if tag == "__pddtype__":
        return pd.api.types.pandas_dtype(payload)
    if tag == "__timestamp__":
        return pd.Timestamp(payload)
    if tag == "__randomstate__":
        name, keys, pos, has_gauss, cached = payload
        state = np.random.RandomState()
        state.set_state((name, _decode(keys, arrays, allowed), pos, has_gauss, cached))
        return state
    if tag == "__tuple__":
        return tuple(_decode(v, arrays, allowed) for v in payload)
    if tag == "__set__":
        return {_decode(v, arrays, allowed) for v in payload}
    if tag == "__dict__":
        return {_decode(k, arrays, allowed): _decode(v, arrays, allowed) for k, v in payload}
    if tag == "__object__":
        cls = _allowed_class(payload, allowed)
        instance = cls.__new__(cls)
        arrays.objects[len(arrays.objects)] = instance  # numbered in encoding order, before its children
        instance.__dict__.update(_decode(rest[0][1], arrays, allowed))
        return instance
    if tag == "__ref__":
        return arrays.objects[payload]
    raise ModelError(f"unknown entry {tag!r} in saved state")


def _allowed_class(qualified: str, allowed: tuple[str, ...]) -> type:
    module_name, _, class_name = qualified.rpartition(".")
    if not (module_name + ".").startswith(allowed) and not module_name.startswith(allowed):
        raise ModelError(f"refusing to load {qualified}: not an allowed transformer class")
    cls = getattr(importlib.import_module(module_name), class_name, None)
    if not isinstance(cls, type):
        raise ModelError(f"saved state names {qualified}, which is not a class")
    return cls
