"""nutpie's numba backend, with its two C callbacks cached on disk between processes.

nutpie (0.16) wraps PyTensor's compiled log density (with gradient) and its "expand" function
(the traced variables) in two ``numba.cfunc`` callbacks on every ``compile_pymc_model`` call.
numba re-lowers the whole log density into each callback, and it can never reuse a cached copy:
the callbacks are closures over dispatchers, and shared variables are named with a fresh uuid4
per process (nutpie PR #334, which would have fixed it, was closed unmerged), so every CLI run
paid for the compilation again, more than sampling a small CFA costs (``benchmarks/RESULTS.md``,
section 4).

Hand-written because no library offers it, in two layers:

- The two callbacks are generated here as source with stable names and registered with
  PyTensor's own numba cache under a key built from PyTensor's key of the compiled graph
  (``pytensor.link.numba.cache``, the mechanism PyTensor uses for its own kernels), so a later
  process loads them instead of compiling them.
- A compiled model is recorded as one small JSON entry (shapes, shared-variable layout, the
  callbacks' keys) under a :func:`bayes_sor.sampling.graph_key.graph_key` of its log density and
  traced variables *before* PyTensor's rewrites, plus everything else the compile reads (shapes,
  settings, library versions, this code). A model seen before, also with other answers of the
  same shape (data are shared variables, read at run time), is then assembled from the entry
  and the cached callbacks without rewriting or compiling anything. An entry that no longer
  fits, a callback gone from numba's cache or a graph the key cannot describe means compiling
  as before, never failing.
- Deriving the log density to key it, and PyMC's initial-point function, cost a cached run
  0.2-0.4 s: a caller that knows the call that built the model (:func:`build_key`: its
  arguments, pickled, and the package's source) gets, from its second run on, the graph's key
  and the initial point from a record of that call, without either. The record also holds
  what nutpie reads of the model besides (its data, dims and coordinates) and what the caller
  asked to keep of it, so :func:`recorded_model` assembles the compiled model of a recorded
  call before the model is built, and a caller that finds one need not import PyMC at all.

Everything else is nutpie's: its graph functions, data record and ``CompiledPyMCModel`` (so
``with_data`` keeps working); nutpie is pinned to 0.16.x in ``pyproject.toml`` because these
are its internals. A graph PyTensor cannot cache (no key) gets uncached callbacks, as nutpie's
own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import pickle
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from pytensor import config
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import graph_inputs

from bayes_sor.errors import OutputError
from bayes_sor.files import write_atomic
from bayes_sor.sampling.graph_key import Unkeyable, graph_key

#: bumped whenever the generated source changes, so no stale callback is ever loaded
TEMPLATE_VERSION = "1"
#: one small JSON file per compiled model, beside PyTensor's numba cache; in ``builds/``, one
#: per model-building call seen (:func:`build_key`): its graph's key and its initial point
MODEL_CACHE = config.base_compiledir / "bayes_sor_models"
#: PyTensor settings that change what a graph compiles to
_CONFIG_FLAGS = (
    "floatX",
    "optimizer",
    "optimizer_excluding",
    "optimizer_including",
    "optimizer_requiring",
    "numba__fastmath",
)
_LIBRARIES = ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")
#: libraries that the building of a model reads besides those (its data, its start values)
_BUILD_LIBRARIES = ("pandas", "scipy")

_LOGP = """\
def {name}(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    try:
{shared}        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_dim},))
        logp = carray(logp_, ())
        logp_val, grad = inner(x{args})
        logp[()] = logp_val
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_val):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND = """\
def {name}(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    try:
{shared}        x = carray(x_, ({n_dim},))
        out = carray(out_, ({n_expanded},))
        (values,) = inner(x{args})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def load_nutpie():
    """The ``nutpie`` module, imported (the first time) without ArviZ's plotting.

    nutpie's ``sample`` module runs ``import arviz``, whose ``__init__`` imports ``arviz_plots``
    and with it matplotlib's pyplot (~0.7 s of every sampling command), and then calls only
    ``arviz.from_dict`` and ``arviz.dict_to_dataset``: ``arviz_base``'s functions, which
    ``arviz`` re-exports as the same objects. So ``arviz_base`` stands in for ``arviz`` while
    nutpie is imported; a later ``import arviz`` (the report) loads the real one. Where
    ``arviz`` is loaded already (a notebook), nutpie is imported as it is.
    """
    if "nutpie" not in sys.modules and "arviz" not in sys.modules:
        # loaded already with arviz_stats; imported here only to stand in for arviz
        import arviz_base

        sys.modules["arviz"] = arviz_base
        try:
            # nutpie and numba (seconds to import) load only when a model is compiled or sampled
            import nutpie.compile_pymc
        finally:
            del sys.modules["arviz"]
    # nutpie and numba (seconds to import) load only when a model is compiled or sampled
    import nutpie.compile_pymc

    return nutpie


def compile_pymc_model(
    model,
    *,
    initial_points: dict,
    var_names: Iterable[str] | None = None,
    announce: Callable[[bool], None] | None = None,
    build: str | None = None,
    facts: dict | None = None,
):
    """``nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=set())`` with cached
    C callbacks; returns nutpie's ``CompiledPyMCModel``.

    A model compiled before (same :class:`_ModelGraph` key) is assembled from its cache entry
    and the two cached callbacks, without PyTensor rewriting or compiling anything but the
    initial point; its ``logp_func``/``expand_func`` (PyTensor functions nutpie keeps but does
    not call when sampling) are then ``None``. ``build``, the :func:`build_key` of the call that
    built ``model``: the compiled model is recorded under it, so that the same call made again
    gets it from :func:`recorded_model` without building the model. ``announce(cached)`` is called
    before the model is assembled from the cache (``True``) or compiled (``False``; also after
    an entry that turned out not to fit), so a caller can say how long the wait will be.
    ``initial_points`` must be the ones the call ``build`` chose (its record keeps its point).
    ``facts``: what the caller wants back from :func:`recorded_model` with the compiled model
    (JSON data, e.g. the likelihood chosen), kept in the record of ``build``.
    """
    # PyMC (~0.3 s) loads only when a model is compiled: a recorded build needs none of it
    from pymc.initial_point import make_initial_point_fn

    announce = announce or (lambda cached: None)
    var_names = None if var_names is None else list(var_names)
    record_path = _build_record_path(build, var_names)
    point_fn = make_initial_point_fn(
        model=model, overrides=initial_points, jitter_rvs=set(), return_transformed=True
    )
    point = point_fn(0)
    graph = _ModelGraph.of(model, point, var_names)
    entry_path = None if graph.key is None else MODEL_CACHE / f"{graph.key}.json"
    compiled = None
    if entry_path is not None and entry_path.is_file():
        announce(True)
        compiled = _from_model_entry(entry_path, graph, model, point_fn)
    if compiled is None:
        announce(False)
        compiled, entry = _compile(model, point_fn, var_names)
        if entry_path is not None and entry is not None:
            # an unwritable cache costs the next run its compile time, nothing else
            with contextlib.suppress(OSError, OutputError):
                write_atomic(entry_path, lambda tmp: tmp.write_text(json.dumps(entry)))
    if record_path is not None and entry_path is not None and entry_path.is_file():
        record = {
            "graph": graph.key,
            "point": {name: _array_json(point[name]) for name in graph.joined},
            "shared": {
                name: _array_json(found[0].get_value(borrow=True))
                for name, found in graph.shared.items()
                if name is not None and len(found) == 1
            },
            "dims": {name: list(d) for name, d in compiled.dims.items()},
            "coords": {name: index.tolist() for name, index in compiled.coords.items()},
            "facts": facts or {},
        }
        with contextlib.suppress(OSError, OutputError):
            write_atomic(record_path, lambda tmp: tmp.write_text(json.dumps(record)))
    return compiled


def recorded_model(
    build: str | None,
    var_names: Iterable[str] | None = None,
    facts: Iterable[str] = (),
    announce: Callable[[dict], None] | None = None,
):
    """The compiled model of a model-building call recorded by :func:`compile_pymc_model`
    (its ``build`` and ``var_names``) and the ``facts`` the caller kept with it, without the
    model: ``(CompiledPyMCModel, facts)``, or ``None`` when there is no usable record (or one
    without each of the ``facts`` named; the caller then builds the model and compiles it).
    ``announce(facts)`` is called before the cached callbacks are loaded.

    The key of the call (its arguments and the package's code) decides that the record is
    this model's: its data, initial point, dims and coordinates are the ones that call built.
    """
    record_path = _build_record_path(build, None if var_names is None else list(var_names))
    if record_path is None or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        point = {name: _json_array(v) for name, v in record["point"].items()}
        shared = {name: _json_array(v) for name, v in record["shared"].items()}
        dims = {name: tuple(d) for name, d in record["dims"].items()}
        coords = {name: pd.Index(values) for name, values in record["coords"].items()}
        kept = record["facts"]
        entry_path = MODEL_CACHE / f"{record['graph']}.json"
    except (OSError, KeyError, TypeError, ValueError):
        return None
    if not entry_path.is_file() or not set(facts) <= set(kept):
        return None
    (announce or (lambda facts: None))(kept)
    compiled = _from_entry(
        entry_path,
        {name: value.shape for name, value in point.items()},
        {name: (_Shared(name, value.ndim), value) for name, value in shared.items()},
        lambda shape_info, reparameterized: (dims, coords),
        lambda seed: {k: v.copy() for k, v in point.items()},
    )
    return None if compiled is None else (compiled, kept)


@dataclass(frozen=True)
class _Shared:
    """A shared variable as nutpie's data record and ``with_data`` see it: its name and
    rank (the variable itself is PyTensor's, in a model a recorded call did not build)."""

    name: str
    ndim: int


def _array_json(value) -> dict:
    """An array as JSON keeps it exactly (floats written as their shortest repr)."""
    value = np.asarray(value)
    return {"dtype": value.dtype.str, "shape": value.shape, "values": value.tolist()}


def _json_array(kept: dict) -> np.ndarray:
    return np.array(kept["values"], dtype=np.dtype(kept["dtype"])).reshape(kept["shape"])


def build_key(build: str, *args, **kwargs) -> str | None:
    """A key of the model-building call ``build(*args, **kwargs)``, for
    :func:`compile_pymc_model`'s ``build``: the function's name (``module.function``; a name,
    so that a record is found without importing the builder), every argument as given
    (pickled: the whole parameter table, every data value) and the source of the bayes_sor
    package, whose code (the builder's defaults included) builds the graph. Calls with equal
    keys build the same model; ``None`` when an argument cannot be pickled."""
    try:
        arguments = pickle.dumps((build, args, kwargs), protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    return hashlib.sha256(arguments + _package_source()).hexdigest()


@functools.cache
def _package_source() -> bytes:
    """sha256 of every module of the bayes_sor package, with its path."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\x00" + path.read_bytes())
    return digest.digest()


def _build_record_path(build: str | None, var_names: list[str] | None) -> Path | None:
    """Where the record of a model-building call is kept (``None``: no call key, or PyTensor's
    numba cache off, which the entries rely on)."""
    if build is None or not config.numba__cache:
        return None
    parts = (
        build,
        repr(var_names),
        *_environment(),
        *(f"{p}={metadata.version(p)}" for p in _BUILD_LIBRARIES),
    )
    key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return MODEL_CACHE / "builds" / f"{key}.json"


def _shared_inputs(outputs: list) -> dict[str | None, list]:
    """The shared variables the graph of ``outputs`` reads, by name."""
    shared: dict[str | None, list] = {}
    for var in graph_inputs(outputs):
        if isinstance(var, SharedVariable):
            shared.setdefault(var.name, []).append(var)
    return shared


@dataclass(frozen=True)
class _ModelGraph:
    """What the cache needs to know of a PyMC model before compiling it."""

    key: str | None
    joined: dict[str, tuple[int, ...]]  # value variables (nutpie's order) and their shapes
    shared: dict[str | None, list]  # the graph's shared variables by name

    @classmethod
    def of(cls, model, point: dict[str, np.ndarray], var_names: Iterable[str] | None):
        value_vars = [model.rvs_to_values[rv] for rv in model.free_RVs]
        joined = {v.name: tuple(np.shape(point[v.name])) for v in value_vars}
        wanted = None if var_names is None else set(var_names)
        traced = [
            v
            for v in model.unobserved_value_vars
            if v.name not in joined and (wanted is None or v.name in wanted)
        ]
        outputs = [model.logp(), *traced]
        shared = _shared_inputs(outputs)
        if not config.numba__cache:
            return cls(None, joined, shared)
        try:
            graph = graph_key(outputs, value_vars)
        except Unkeyable:
            return cls(None, joined, shared)
        # Everything else nutpie's compile reads: the shapes (not in the graph's types), the
        # bounds-check rewrite, the compile settings, the libraries and the code of the key.
        parts = (
            graph,
            repr(list(joined.items())),
            repr([v.name for v in traced]),
            str(model.check_bounds),
            *_environment(),
        )
        return cls(hashlib.sha256("\x00".join(parts).encode()).hexdigest(), joined, shared)


def _environment() -> tuple[str, ...]:
    """What a compiled model depends on besides its graph: the compile settings, the libraries
    and the code of this module and of the graph's key."""
    return (
        *(str(getattr(config, flag, None)) for flag in _CONFIG_FLAGS),
        *(f"{p}={metadata.version(p)}" for p in _LIBRARIES),
        *(
            hashlib.sha256(Path(f).read_bytes()).hexdigest()
            for f in (__file__, graph_key.__code__.co_filename)
        ),
    )


def _compile(model, point_fn, var_names) -> tuple:
    """nutpie's compile (PyTensor graph functions) with our callbacks; returns the compiled
    model and its cache entry (``None`` when the callbacks cannot be cached)."""
    nutpie_pymc = load_nutpie().compile_pymc

    n_dim, n_expanded, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized = (
        nutpie_pymc._make_functions(
            model,
            mode="NUMBA",
            compute_grad=True,
            join_expanded=True,
            pymc_initial_point_fn=nutpie_pymc._wrap_with_lock(point_fn),
            var_names=var_names,
        )
    )
    shared_vars = list(dict.fromkeys([*logp_fn.get_shared(), *expand_fn.get_shared()]))
    uses = {
        kind: [shared_vars.index(v) for v in fn.get_shared()]
        for kind, fn in (("logp", logp_fn), ("expand", expand_fn))
    }
    inner = {"logp": logp_fn.vm.jit_fn, "expand": expand_fn.vm.jit_fn}
    inner_keys = {kind: _inner_key(fn) for kind, fn in inner.items()}
    compiled = _assemble(
        nutpie_pymc._prepare_dims_and_coords(model, shape_info, reparameterized),
        n_dim,
        n_expanded,
        shape_info,
        reparameterized,
        [(var, var.get_value()) for var in shared_vars],
        uses,
        inner,
        inner_keys,
        initial_point_fn,
        logp_fn,
        expand_fn,
    )
    names = [v.name for v in shared_vars]
    cacheable = (
        None not in inner_keys.values() and len(set(names)) == len(names) and None not in names
    )
    entry = {
        "n_dim": int(n_dim),
        "n_expanded": int(n_expanded),
        "shape_info": [
            shape_info[0],
            [[int(s.start), int(s.stop)] for s in shape_info[1]],
            [[int(d) for d in shape] for shape in shape_info[2]],
        ],
        "reparameterized": reparameterized,
        "shared": names,
        "uses": uses,
        "inner_keys": inner_keys,
    }
    return compiled, entry if cacheable else None


def _from_model_entry(path: Path, graph: _ModelGraph, model, point_fn):
    """:func:`_from_entry` with ``model``'s data, dims and coordinates."""
    shared = {
        name: (found[0], found[0].get_value())
        for name, found in graph.shared.items()
        if name is not None and len(found) == 1  # a name the entry reads twice: no fit
    }

    def dims_and_coords(shape_info, reparameterized):
        nutpie_pymc = load_nutpie().compile_pymc
        return nutpie_pymc._prepare_dims_and_coords(model, shape_info, reparameterized)

    return _from_entry(path, graph.joined, shared, dims_and_coords, point_fn)


def _from_entry(
    path: Path,
    joined: dict[str, tuple[int, ...]],
    shared: dict[str, tuple],
    dims_and_coords: Callable[[tuple, list[str]], tuple[dict, dict]],
    point_fn,
):
    """The compiled model from a cache entry, or ``None`` if the entry does not fit or a
    callback is no longer in numba's cache (the caller then compiles). ``joined``: the value
    variables and their shapes; ``shared``: by name, each shared variable the entry reads
    (anything with its ``name`` and ``ndim``) and its value; ``dims_and_coords(shape_info,
    reparameterized)``: nutpie's dims and coordinates; ``point_fn(seed)``: the initial
    point."""
    nutpie_pymc = load_nutpie().compile_pymc

    try:
        entry = json.loads(path.read_text())
        names, slices, shapes = entry["shape_info"]
        shape_info = (names, [slice(*s) for s in slices], [tuple(s) for s in shapes])
        entered = dict(zip(names, shape_info[2], strict=True))
        if any(entered.get(name) != tuple(shape) for name, shape in joined.items()):
            return None
        initial_point_fn = nutpie_pymc._rv_dict_to_flat_array_wrapper(
            nutpie_pymc._wrap_with_lock(point_fn),
            names=list(joined),
            shapes=list(joined.values()),
        )
        return _assemble(
            dims_and_coords(shape_info, entry["reparameterized"]),
            entry["n_dim"],
            entry["n_expanded"],
            shape_info,
            entry["reparameterized"],
            [shared[name] for name in entry["shared"]],
            entry["uses"],
            dict.fromkeys(entry["inner_keys"]),
            entry["inner_keys"],
            initial_point_fn,
            None,
            None,
        )
    except (_NotCached, ImportError, OSError, KeyError, TypeError, ValueError):
        return None  # a damaged or outdated entry (ImportError: cached by a moved module)


def _assemble(
    dims_and_coords: tuple[dict, dict],
    n_dim: int,
    n_expanded: int,
    shape_info,
    reparameterized: list[str],
    shared: list[tuple],
    uses: dict[str, list[int]],
    inner: dict,
    inner_keys: dict,
    initial_point_fn,
    logp_fn,
    expand_fn,
):
    """nutpie's ``CompiledPyMCModel`` around our two callbacks (compiled, or, with ``inner``
    ``None``, only loaded from numba's cache); ``shared``: each shared variable (anything with
    its ``name`` and ``ndim``) with its value, in the callbacks' order."""
    nutpie_pymc = load_nutpie().compile_pymc

    # Stable keys (nutpie uses uuid4): the record layout is part of the callbacks' code.
    shared_var_keys = {var: f"shared{i}" for i, (var, _) in enumerate(shared)}
    shared_data = {
        shared_var_keys[var]: np.array(value, order="C", copy=True) for var, value in shared
    }
    for value in shared_data.values():
        value.flags.writeable = False
    user_data = nutpie_pymc.make_user_data(shared_var_keys, shared_data)
    callbacks = {
        kind: _callback(
            kind,
            inner[kind],
            inner_keys[kind],
            n_dim,
            n_expanded,
            user_data,
            {f"shared{i}": shared_data[f"shared{i}"] for i in uses[kind]},
        )
        for kind in ("logp", "expand")
    }
    dims, coords = dims_and_coords
    return nutpie_pymc.CompiledPyMCModel(
        _n_dim=n_dim,
        dims=dims,
        _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=callbacks["logp"],
        compiled_expand_func=callbacks["expand"],
        initial_point_func=initial_point_fn,
        shared_data=shared_data,
        shared_var_keys=shared_var_keys,
        user_data=user_data,
        n_expanded=n_expanded,
        shape_info=shape_info,
        logp_func=logp_fn,
        expand_func=expand_fn,
        reparameterized_names=reparameterized,
    )


def _inner_key(inner) -> str | None:
    # PyTensor's numba backend loads numba (seconds): only when a model is compiled for nutpie
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    return CACHED_SRC_FUNCTIONS.get(inner.py_func)


class _NotCached(LookupError):
    """A callback asked only to load is not in numba's cache."""


def _callback(
    kind: str,
    inner,
    inner_key: str | None,
    n_dim: int,
    n_expanded: int,
    user_data: np.ndarray,
    shared: dict[str, np.ndarray],
):
    """One C callback around the compiled PyTensor function ``inner``, cached when PyTensor
    cached ``inner`` (``inner_key``); ``inner=None`` loads it from the cache or raises
    :class:`_NotCached`."""
    # numba (seconds to import) loads only when a model is compiled for nutpie
    import numba
    from numba.core import sigutils
    from numba.core.ccallback import CFunc
    from pytensor.link.numba.cache import compile_numba_function_src

    address_as_void_pointer = load_nutpie().compile_pymc.address_as_void_pointer

    views, args = _shared_arguments(user_data, shared)
    template = _LOGP if kind == "logp" else _EXPAND
    key = callback_key(template, n_dim, n_expanded, views, args, inner_key)
    # The key in the name keeps two models' callbacks apart in one process's symbol table.
    name = f"nutpie_{kind}_{key[:20]}"
    source = template.format(name=name, n_dim=n_dim, n_expanded=n_expanded, shared=views, args=args)
    py_func = compile_numba_function_src(
        source,
        name,
        # __name__ lets numba rebuild the callback's environment when loading it from disk
        global_env={
            "__name__": __name__,
            "np": np,
            "carray": numba.carray,
            "as_pointer": address_as_void_pointer,
            "inner": inner,
        },
        cache_key=None if inner_key is None else f"bayes_sor_{key}",
    )
    if inner is not None:
        return numba.cfunc(_signature(kind), cache=inner_key is not None)(py_func)

    class LoadOnly(CFunc):
        def _compile_uncached(self):
            raise _NotCached(name)

    callback = LoadOnly(
        py_func, sigutils.normalize_signature(_signature(kind)), locals={}, options={}
    )
    callback.enable_caching()
    callback.compile()
    return callback


def callback_key(
    template: str, n_dim: int, n_expanded: int, views: str, args: str, inner_key
) -> str:
    """The disk-cache key of one callback: its source and the key of the PyTensor function it
    calls, and this module's import path, since numba's cached copy names the module that
    compiled it and cannot be loaded once that module has moved."""
    parts = (
        TEMPLATE_VERSION,
        __name__,
        template,
        str(n_dim),
        str(n_expanded),
        views,
        args,
        str(inner_key),
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _signature(kind: str):
    """nutpie's C signatures of the two callbacks."""
    # numba (seconds to import) loads only when a model is compiled for nutpie
    import numba.types as nt

    double = nt.CPointer(nt.double)
    if kind == "logp":  # (dim, x, gradient, logp, user data)
        return nt.int64(nt.uint64, double, double, double, nt.voidptr)
    return nt.int64(nt.uint64, nt.uint64, double, double, nt.voidptr)  # (dim, expanded, ...)


def _shared_arguments(user_data: np.ndarray, shared: dict[str, np.ndarray]) -> tuple[str, str]:
    """Source lines that view each shared array through nutpie's data record, and the
    argument list passing them on, in the order of ``shared``.

    The record (``nutpie.compile_pymc.make_user_data``) holds, per shared variable, its data
    address, size and shape, all 8-byte words; the callbacks read it as one uint64 array at
    the offsets computed here, so data swapped in by ``with_data`` is seen without recompiling.
    """
    if not shared:
        return "", ""
    record = user_data.dtype["shared"]
    base = user_data.dtype.fields["shared"][1]

    def word(part: str, key: str) -> int:
        return (base + record.fields[part][1] + record[part].fields[key][1]) // 8

    lines = [
        f"        record = carray(user_data_, ({user_data.dtype.itemsize // 8},), np.uint64)\n"
    ]
    for i, (key, value) in enumerate(shared.items()):
        shape = "".join(f"int(record[{word('shape', key) + d}]), " for d in range(value.ndim))
        lines.append(
            f"        shared{i} = carray(as_pointer(record[{word('data', key)}]), "
            f"({shape}), np.{value.dtype.name})\n"
        )
    return "".join(lines), "".join(f", shared{i}" for i in range(len(shared)))
