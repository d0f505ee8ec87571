"""nutpie's numba backend, with its two C callbacks cached on disk between processes.

nutpie (0.16) wraps PyTensor's compiled log density (with gradient) and its "expand" function
(the traced variables) in two ``numba.cfunc`` callbacks on every ``compile_pymc_model`` call.
numba re-lowers the whole log density into each callback, and it can never reuse a cached copy:
the callbacks are closures over dispatchers, and shared variables are named with a fresh uuid4
per process (nutpie PR #334, which would have fixed it, was closed unmerged). That cost 6-10 s
of every CLI run, more than sampling the Holzinger-Swineford CFA.

Hand-written because no library offers it: the same two callbacks are generated here as source
with stable names and registered with PyTensor's own numba cache under a key built from
PyTensor's key of the compiled graph (``pytensor.link.numba.cache``, the mechanism PyTensor uses
for its own kernels), so a rerun of a model, with any data of the same ranks, loads them in
~0.3 s. Everything else is nutpie's: its graph functions, data record and ``CompiledPyMCModel``
(so ``with_data`` keeps working); nutpie is pinned to 0.16.x in ``pyproject.toml`` because
these are its internals. A graph PyTensor cannot cache (no key) gets uncached callbacks, as
nutpie's own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

#: bumped whenever the generated source changes, so no stale callback is ever loaded
TEMPLATE_VERSION = "1"

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


def compile_pymc_model(model, *, initial_points: dict, var_names: Iterable[str] | None = None):
    """``nutpie.compile_pymc_model(model, backend="numba", jitter_rvs=set())`` with cached
    C callbacks; returns nutpie's ``CompiledPyMCModel``."""
    import numba
    from nutpie import compile_pymc as nutpie_pymc
    from pymc.initial_point import make_initial_point_fn

    point_fn = make_initial_point_fn(model=model, overrides=initial_points, jitter_rvs=set(),
                                     return_transformed=True)
    n_dim, n_expanded, logp_fn, expand_fn, initial_point_fn, shape_info, reparameterized = (
        nutpie_pymc._make_functions(
            model, mode="NUMBA", compute_grad=True, join_expanded=True,
            pymc_initial_point_fn=nutpie_pymc._wrap_with_lock(point_fn), var_names=var_names))

    shared_vars = list(dict.fromkeys([*logp_fn.get_shared(), *expand_fn.get_shared()]))
    # Stable keys (nutpie uses uuid4): the record layout is part of the callbacks' code.
    shared_var_keys = {var: f"shared{i}" for i, var in enumerate(shared_vars)}
    shared_data = {key: np.array(var.get_value(), order="C", copy=True)
                   for var, key in shared_var_keys.items()}
    for value in shared_data.values():
        value.flags.writeable = False
    user_data = nutpie_pymc.make_user_data(shared_var_keys, shared_data)

    signatures = {
        "logp": numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double),
                                  numba.types.CPointer(numba.types.double),
                                  numba.types.voidptr),
        "expand": numba.types.int64(numba.types.uint64, numba.types.uint64,
                                    numba.types.CPointer(numba.types.double),
                                    numba.types.CPointer(numba.types.double),
                                    numba.types.voidptr),
    }
    callbacks = {
        kind: _callback(kind, fn, signatures[kind], n_dim, n_expanded, user_data,
                        {shared_var_keys[var]: shared_data[shared_var_keys[var]]
                         for var in fn.get_shared()})
        for kind, fn in (("logp", logp_fn), ("expand", expand_fn))
    }
    dims, coords = nutpie_pymc._prepare_dims_and_coords(model, shape_info, reparameterized)
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


def _callback(kind: str, fn, signature, n_dim: int, n_expanded: int, user_data: np.ndarray,
              shared: dict[str, np.ndarray]):
    """One C callback around the PyTensor function ``fn``, cached when PyTensor cached ``fn``."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    inner = fn.vm.jit_fn
    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    views, args = _shared_arguments(user_data, shared)
    template = _LOGP if kind == "logp" else _EXPAND
    parts = (TEMPLATE_VERSION, template, str(n_dim), str(n_expanded), views, args,
             str(inner_key))
    key = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    # The key in the name keeps two models' callbacks apart in one process's symbol table.
    name = f"nutpie_{kind}_{key[:20]}"
    source = template.format(name=name, n_dim=n_dim, n_expanded=n_expanded, shared=views,
                             args=args)
    py_func = compile_numba_function_src(
        source, name,
        # __name__ lets numba rebuild the callback's environment when loading it from disk
        global_env={"__name__": __name__, "np": np, "carray": numba.carray,
                    "as_pointer": address_as_void_pointer, "inner": inner},
        cache_key=None if inner_key is None else f"bayes_sor_{key}")
    return numba.cfunc(signature, cache=inner_key is not None)(py_func)


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

    lines = [f"        record = carray(user_data_, ({user_data.dtype.itemsize // 8},), "
             "np.uint64)\n"]
    for i, (key, value) in enumerate(shared.items()):
        shape = "".join(f"int(record[{word('shape', key) + d}]), " for d in range(value.ndim))
        lines.append(f"        shared{i} = carray(as_pointer(record[{word('data', key)}]), "
                     f"({shape}), np.{value.dtype.name})\n")
    return "".join(lines), "".join(f", shared{i}" for i in range(len(shared)))
