"""The cached C callbacks compute what nutpie's own do, and load from disk the second time."""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import nutpie
import pandas as pd
import pymc.initial_point
import pytest
from paths import ROOT

from bayes_sor.model.build import pymc_model
from bayes_sor.sampling import nutpie_cache
from bayes_sor.sampling.nutpie_cache import compile_pymc_model
from bayes_sor.spec.partable import build_partable
from bayes_sor.spec.syntax import parse

DOUBLE = ctypes.POINTER(ctypes.c_double)
MODEL = "visual =~ x1 + x2 + x3\ntextual =~ x4 + x5 + x6\n"
#: the builder's name in a build key, as ``runs.fit`` gives it
BUILDER = "bayes_sor.model.build.pymc_model"


@pytest.fixture(scope="module")
def hs() -> pd.DataFrame:
    return pd.read_csv(ROOT / "data/holzinger_swineford.csv")


@pytest.fixture(autouse=True)
def model_cache(tmp_path, monkeypatch) -> Path:
    """Each test starts with no compiled-model entries (numba's callback cache stays)."""
    monkeypatch.setattr(nutpie_cache, "MODEL_CACHE", tmp_path / "models")
    return tmp_path / "models"


def _built(data: pd.DataFrame, prior_scale: float = 1.0):
    return pymc_model(
        build_partable(parse(MODEL), prior_scale=prior_scale), data, likelihood="marginal"
    )


def _compile(built):
    return compile_pymc_model(built.model, initial_points=built.initial_values)


def _logp(compiled, x: np.ndarray) -> tuple[int, float, np.ndarray]:
    grad, logp = np.zeros(compiled.n_dim), np.zeros(())
    rc = compiled.compiled_logp_func.ctypes(
        compiled.n_dim,
        x.ctypes.data_as(DOUBLE),
        grad.ctypes.data_as(DOUBLE),
        logp.ctypes.data_as(DOUBLE),
        compiled.user_data.ctypes.data,
    )
    return rc, float(logp), grad


def _expand(compiled, x: np.ndarray) -> tuple[int, np.ndarray]:
    out = np.zeros(compiled.n_expanded)
    rc = compiled.compiled_expand_func.ctypes(
        compiled.n_dim,
        compiled.n_expanded,
        x.ctypes.data_as(DOUBLE),
        out.ctypes.data_as(DOUBLE),
        compiled.user_data.ctypes.data,
    )
    return rc, out


def _same_density(one, other, x: np.ndarray) -> None:
    assert _logp(one, x)[:2] == _logp(other, x)[:2]
    np.testing.assert_array_equal(_logp(one, x)[2], _logp(other, x)[2])
    np.testing.assert_array_equal(_expand(one, x)[1], _expand(other, x)[1])


def test_callbacks_equal_nutpies_own_and_load_from_disk_the_second_time(hs):
    built = _built(hs)
    ours = _compile(built)
    again = _compile(built)
    theirs = nutpie.compile_pymc_model(
        built.model, backend="numba", jitter_rvs=set(), initial_points=built.initial_values
    )
    assert again.compiled_logp_func.cache_hits == again.compiled_expand_func.cache_hits == 1
    x = ours.initial_point_func(0) + np.linspace(-0.2, 0.2, ours.n_dim)
    rc, logp, _ = _logp(ours, x)
    assert rc == 0 and np.isfinite(logp)
    for other in (again, theirs):
        _same_density(ours, other, x)
    assert ours.shapes == theirs.shapes and ours.dims == theirs.dims
    # a point outside the support is reported to nutpie as such, not as a number
    assert _logp(ours, np.full(ours.n_dim, np.nan))[0] in (3, 4)


def test_data_swapped_in_with_data_is_what_the_callback_reads(hs):
    built, half = _built(hs), _built(hs.iloc[:150])
    compiled = _compile(built)
    fresh = _compile(half)
    swapped = compiled.with_data(**{v.name: v.get_value() for v in half.model.data_vars})
    x = compiled.initial_point_func(0)
    assert _logp(swapped, x)[1] == pytest.approx(_logp(fresh, x)[1], rel=1e-12)
    assert _logp(swapped, x)[1] != pytest.approx(_logp(compiled, x)[1], rel=1e-6)


def test_two_models_in_one_process_keep_their_own_callbacks(hs):
    one, two = (
        _built(hs),
        pymc_model(build_partable(parse("visual =~ x1 + x2 + x3\n")), hs, likelihood="marginal"),
    )
    first = _compile(one)
    second = _compile(two)
    assert first.compiled_logp_func.native_name != second.compiled_logp_func.native_name
    assert first.n_dim != second.n_dim
    for compiled in (first, second):
        assert _logp(compiled, compiled.initial_point_func(0))[0] == 0


def test_a_graph_pytensor_cannot_cache_gets_working_uncached_callbacks(
    hs, model_cache, monkeypatch
):
    import weakref

    import pytensor.link.numba.cache as pytensor_cache

    class NoKeys(weakref.WeakKeyDictionary):
        """PyTensor still caches its kernels; the callbacks find no key for the graph."""

        def get(self, key, default=None):
            return default

    built = _built(hs)
    cached = _compile(built)
    monkeypatch.setattr(nutpie_cache, "MODEL_CACHE", model_cache.parent / "empty")
    monkeypatch.setattr(pytensor_cache, "CACHED_SRC_FUNCTIONS", NoKeys())
    uncached = _compile(built)
    assert uncached.logp_func is not None  # compiled, not assembled from an entry
    assert uncached.compiled_logp_func.cache_hits == 0
    assert uncached.compiled_logp_func._cache.__class__.__name__ == "NullCache"
    x = cached.initial_point_func(0)
    assert _logp(uncached, x)[1] == _logp(cached, x)[1]


@pytest.fixture(scope="module")
def entered(hs, tmp_path_factory):
    """The HS model compiled once into a module-wide entry folder: (folder, compiled, entry)."""
    folder = tmp_path_factory.mktemp("entered")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nutpie_cache, "MODEL_CACHE", folder)
        compiled = _compile(_built(hs))
    (entry,) = folder.glob("*.json")
    return folder, compiled, entry


def test_a_model_compiled_before_is_assembled_from_its_entry_without_pytensor(
    hs, entered, monkeypatch
):
    folder, first, _ = entered
    monkeypatch.setattr(nutpie_cache, "MODEL_CACHE", folder)
    again = _compile(_built(hs))  # a new PyMC model object, as in a new process
    assert first.logp_func is not None
    _assembled_alike(first, again)


def _assembled_alike(first, again) -> None:
    """``again``, assembled from the cache without compiling, is ``first`` in every part
    nutpie uses: density, gradient, traced values, starting point and layout."""
    assert again.logp_func is None  # nothing compiled
    assert again.compiled_logp_func.cache_hits == again.compiled_expand_func.cache_hits == 1
    start = first.initial_point_func(0)
    assert again.initial_point_func(0).tobytes() == start.tobytes()
    assert again.initial_point_func(3).tobytes() == start.tobytes()  # no jitter, any chain
    _same_density(first, again, start + np.linspace(-0.3, 0.3, first.n_dim))
    assert (again.n_dim, again.n_expanded, again.shapes, again.dims) == (
        first.n_dim,
        first.n_expanded,
        first.shapes,
        first.dims,
    )
    names, slices, shapes = first.shape_info
    assert again.shape_info == (names, slices, [tuple(int(d) for d in s) for s in shapes])


def test_other_answers_of_the_same_shape_reuse_the_compiled_model(
    hs, entered, model_cache, monkeypatch
):
    resampled = hs.sample(frac=1.0, replace=True, random_state=7).reset_index(drop=True)
    fresh = _compile(_built(resampled))  # into the test's own, empty folder
    monkeypatch.setattr(nutpie_cache, "MODEL_CACHE", entered[0])
    reused = _compile(_built(resampled))
    assert fresh.logp_func is not None and reused.logp_func is None
    x = fresh.initial_point_func(0) + 0.1
    _same_density(fresh, reused, x)
    # SBC swaps data into a compiled model: that works on an assembled one too
    half = _built(hs.iloc[:150])
    swapped = reused.with_data(**{v.name: v.get_value() for v in half.model.data_vars})
    assert _logp(swapped, x)[1] == pytest.approx(_logp(_compile(half), x)[1], rel=1e-12)


def test_a_changed_model_is_compiled_afresh(hs, entered, monkeypatch):
    monkeypatch.setattr(nutpie_cache, "MODEL_CACHE", entered[0])
    assert _compile(_built(hs, prior_scale=2.0)).logp_func is not None


def test_a_callbacks_key_names_the_module_that_compiled_it(monkeypatch):
    """numba's cached callback imports the module that compiled it when loaded: after a move
    (bayes_sor.nutpie_cache -> bayes_sor.sampling.nutpie_cache) the old copy must not match."""
    here = nutpie_cache.callback_key("src", 3, 4, "views", "args", "inner")
    monkeypatch.setattr(nutpie_cache, "__name__", "bayes_sor.nutpie_cache")
    assert nutpie_cache.callback_key("src", 3, 4, "views", "args", "inner") != here


@pytest.mark.parametrize(
    "damage",
    ["callback gone", "not json", "another shape", "a field missing", "callback of a moved module"],
)
def test_an_entry_that_no_longer_fits_means_compiling_not_failing(
    hs, entered, model_cache, monkeypatch, damage
):
    _, first, entry_path = entered
    entry = json.loads(entry_path.read_text())
    if damage == "callback of a moved module":  # numba's pickle imports a module now gone
        compile_callback = nutpie_cache._callback

        def moved(kind, inner, *args):
            if inner is None:
                raise ModuleNotFoundError("No module named 'bayes_sor.nutpie_cache'")
            return compile_callback(kind, inner, *args)

        monkeypatch.setattr(nutpie_cache, "_callback", moved)
    if damage == "callback gone":  # e.g. numba's cache folder was cleared
        entry["inner_keys"]["logp"] = "0" * 64
    elif damage == "another shape":
        entry["shape_info"][2][0] = [99]
    elif damage == "a field missing":
        del entry["n_dim"]
    model_cache.mkdir()
    (model_cache / entry_path.name).write_text("{" if damage == "not json" else json.dumps(entry))
    again = _compile(_built(hs))
    assert again.logp_func is not None
    _same_density(first, again, first.initial_point_func(0))


def test_a_graph_without_a_key_is_compiled_and_not_entered(hs, model_cache, monkeypatch):
    def unkeyable(*args):
        raise nutpie_cache.Unkeyable("test")

    monkeypatch.setattr(nutpie_cache, "graph_key", unkeyable)
    assert _compile(_built(hs)).logp_func is not None
    assert not model_cache.exists()


def test_nutpie_loaded_without_arviz_leaves_the_real_arviz_to_a_later_import():
    """load_nutpie lets arviz_base stand in for arviz only while nutpie is imported: the
    conversion nutpie calls is arviz's own, and a later ``import arviz`` gets all of ArviZ."""
    probe = (
        "import sys\n"
        "from bayes_sor.sampling.nutpie_cache import load_nutpie\n"
        "load_nutpie()\n"
        "assert 'arviz' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "import arviz\n"
        "converter = sys.modules['nutpie.sample'].arviz\n"
        "assert converter.from_dict is arviz.from_dict\n"
        "assert converter.dict_to_dataset is arviz.dict_to_dataset\n"
        "assert callable(arviz.plot_dist)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


# ---- the record of a model-building call: a cached model loaded without PyMC's graph work ----
def _call(data: pd.DataFrame, model: str = MODEL, prior_scale: float = 1.0, **options):
    """A build of the model from new objects (as in a new process) and the key of its call."""
    partable = build_partable(parse(model), prior_scale=prior_scale)
    options = {"likelihood": "marginal", **options}
    key = nutpie_cache.build_key(BUILDER, partable, data.copy(), **options)
    return pymc_model(partable, data.copy(), **options), key


def _compile_call(built, key, facts: dict | None = None):
    return compile_pymc_model(
        built.model, initial_points=built.initial_values, build=key, facts=facts
    )


def _no_graph_work(monkeypatch) -> None:
    """PyMC deriving the log density or compiling the initial point now fails the test."""

    def fail(*args, **kwargs):
        raise AssertionError("PyMC's graph work for a recorded build")

    monkeypatch.setattr(pymc.initial_point, "make_initial_point_fn", fail)
    monkeypatch.setattr(nutpie_cache._ModelGraph, "of", fail)


def test_a_recorded_build_gives_back_its_compiled_model_and_facts_without_the_model(
    hs, model_cache, monkeypatch
):
    """What a fit finds before building its model: the record alone (no PyMC model, no graph
    work) assembles the same compiled model, dims and coordinates included, and gives back
    what the caller kept with it; a record without a fact asked for is no record."""
    built, key = _call(hs)
    first = _compile_call(built, key, facts={"likelihood": "marginal"})
    assert len(list((model_cache / "builds").glob("*.json"))) == 1
    _no_graph_work(monkeypatch)
    announced = []
    again, facts = nutpie_cache.recorded_model(key, facts=["likelihood"], announce=announced.append)
    assert facts == {"likelihood": "marginal"} and announced == [facts]
    _assembled_alike(first, again)
    assert set(again.coords) == set(first.coords)
    for name, index in first.coords.items():
        assert again.coords[name].equals(index) and again.coords[name].dtype == index.dtype
    assert again.shared_data.keys() == first.shared_data.keys()
    for name, value in first.shared_data.items():
        assert again.shared_data[name].tobytes() == value.tobytes()
    assert nutpie_cache.recorded_model(key, facts=["likelihood", "other"]) is None
    assert nutpie_cache.recorded_model(_call(hs.iloc[1:])[1]) is None  # another call: none


def test_the_build_key_changes_with_what_a_model_is_built_from_and_only_with_that(hs, monkeypatch):
    same = _call(hs)[1]
    assert _call(hs)[1] == same
    nudged = hs.copy()
    nudged.loc[0, "x1"] = np.nextafter(nudged.loc[0, "x1"], np.inf)
    renamed = hs.rename(columns={"x9": "y9"})
    changed = {
        "an answer's last bit": _call(nudged)[1],
        "a respondent fewer": _call(hs.iloc[1:])[1],
        "a column not in the model renamed": _call(renamed)[1],
        "another model": _call(hs, model=MODEL + "speed =~ x7 + x8 + x9\n")[1],
        "priors widened": _call(hs, prior_scale=2.0)[1],
        "another likelihood": _call(hs, likelihood="conditional")[1],
        "intercepts not centred": _call(hs, centre_locations=False)[1],
        "latent scores kept": _call(hs, save_latent=True)[1],
    }
    assert same not in changed.values()
    assert len(set(changed.values())) == len(changed), changed
    monkeypatch.setattr(nutpie_cache, "_package_source", lambda: b"the next version")
    assert _call(hs)[1] != same  # bayes_sor's code builds the graph


def test_a_build_key_is_the_same_in_a_fresh_process(hs):
    """The CLI's next run must find the record: nothing in the key may depend on the process
    (its hash seed, object identities)."""
    probe = (
        "import pandas as pd\n"
        "from paths import ROOT\n"
        "from test_nutpie_cache import _call\n"
        "print(_call(pd.read_csv(ROOT / 'data/holzinger_swineford.csv'))[1])\n"
    )
    tests = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(tests), str(tests / "sampling")]),
        "PYTHONHASHSEED": "12345",
    }
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.stdout.strip() == _call(hs)[1], result.stderr[-2000:]


def test_an_argument_that_cannot_be_pickled_gives_no_key_and_no_record(hs, model_cache):
    assert nutpie_cache.build_key(BUILDER, build_partable(parse(MODEL)), lambda: hs) is None
    built, _ = _call(hs)
    assert _compile_call(built, None).logp_func is not None
    assert not (model_cache / "builds").exists()


@pytest.mark.parametrize("damage", ["entry gone", "not json", "no graph named"])
def test_a_record_that_does_not_fit_means_the_long_way_not_a_wrong_model(hs, model_cache, damage):
    """A damaged record is no record (the fit then builds and compiles its model); a record
    of another model cannot be found, the key being the call's and the package's digest."""
    built, key = _call(hs)
    first = _compile_call(built, key, facts={"likelihood": "marginal"})
    (record_path,) = (model_cache / "builds").glob("*.json")
    record = json.loads(record_path.read_text())
    if damage == "entry gone":
        (model_cache / f"{record['graph']}.json").unlink()
    elif damage == "not json":
        record_path.write_text("{")
    else:
        del record["graph"]
        record_path.write_text(json.dumps(record))
    assert nutpie_cache.recorded_model(key, facts=["likelihood"]) is None
    again = _compile_call(*_call(hs))
    assert again.n_dim == first.n_dim
    _same_density(first, again, first.initial_point_func(0) + 0.05)
