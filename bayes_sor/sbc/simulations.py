"""One SBC simulation, as a worker process runs it: prior draw -> data -> fit -> ranks.

Everything a worker needs comes from an :class:`SBCConfig` (small, picklable, the same for
every simulation of a run) plus the simulation's index and seed, so local processes and Dask
workers compute identical results. Expensive objects (the compiled NUTS model, the compiled
prior-draw function) are built once per worker process and cached here by content.

Why not ``simuk.SBC`` (ArviZ's SBC package): it calls ``pm.sample`` per simulation (a fresh
compilation each time: ~17 s instead of ~1 s per simulation here), needs an observed random
variable (the marginal likelihood is a ``pm.Potential``), ranks free random variables only,
stops the whole run at the first failed fit, keeps results in memory only and runs
sequentially. What it lacks (compile once and swap data, thinning, derived quantities,
per-simulation persistence, parallel workers) is the whole of this module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from pymc.initial_point import make_initial_point_fn
from pymc.pytensorf import compile as compile_pymc
from pymc.pytensorf import reseed_rngs

from bayes_sor.data.scale import parse_scale
from bayes_sor.errors import ModelSpecError
from bayes_sor.model.build import pymc_model
from bayes_sor.model.marginal import sufficient_statistics
from bayes_sor.model.ordinal import sort_thresholds
from bayes_sor.model.simulate import latent_draws, scale_thresholds, simulate
from bayes_sor.model.start_values import ItemMoments, initial_values
from bayes_sor.posterior.effects import KINDS, effect_draws, effects_dataarray
from bayes_sor.posterior.scores import moderator_quantiles
from bayes_sor.sampling.nutpie_cache import compile_pymc_model
from bayes_sor.sampling.samplers import SamplerSettings, nutpie_options, sample
from bayes_sor.spec.matrices import Representation, extend, representation
from bayes_sor.spec.partable import ParTable, build_partable
from bayes_sor.spec.prior_text import widen

#: Effect kinds ranked besides the free parameters; ``direct`` effects are the regression
#: parameters themselves, ranked already.
EFFECT_KINDS = tuple(k for k in KINDS if k != "direct")


@dataclass(frozen=True)
class SBCConfig:
    """What every simulation of an SBC run shares (the number of simulations is not part of
    it, so a finished run can be extended with more simulations)."""

    model_text: str
    nobs: int
    seed: int = 20261124
    likelihood: str = "auto"
    sampler: str = "nutpie"
    identification: str | None = None
    ordinal: str | None = None
    draws: int = 1000
    tune: int = 1000
    chains: int = 1
    target_accept: float = 0.9
    prior_scale_fit: float = 1.0
    #: priors by parameter kind, over the model header's (``sbc --priors FILE``)
    priors: dict[str, str] | None = None

    def key(self) -> str:
        """A digest identifying the run: a folder's simulations are reused only under it."""
        return hashlib.sha256(
            json.dumps(dataclasses.asdict(self), sort_keys=True).encode()
        ).hexdigest()[:16]

    def settings(self, seed: int) -> SamplerSettings:
        return SamplerSettings(
            sampler=self.sampler,
            chains=self.chains,
            draws=self.draws,
            tune=self.tune,
            seed=seed,
            target_accept=self.target_accept,
            progressbar=False,
            cores=self.chains,
        )


def simulation_seeds(master_seed: int, n_sims: int) -> list[int]:
    """One integer seed per simulation, spawned from the master seed.

    Simulation ``i`` gets the same seed whatever ``n_sims`` is, so runs can be extended. The
    seed feeds ``prior_draw``, ``simulate`` and the sampler, so ``python -m bayes_sor simulate
    MODEL --nobs N --seed SEED --scale none`` rebuilds a simulation's data set.
    """
    children = np.random.SeedSequence(master_seed).spawn(n_sims)
    return [int(c.generate_state(1)[0]) for c in children]


# ---- parameter tables ---------------------------------------------------------------------
def partables(config: SBCConfig) -> tuple[ParTable, ParTable]:
    """The simulating and the fitting parameter table (they differ only in loading priors,
    when ``prior_scale_fit`` != 1). Ordinal items get one threshold fewer than the model's
    scale has categories."""
    simulating = build_partable(
        config.model_text,
        identification=config.identification,
        ordinal=config.ordinal,
        priors=config.priors,
    )
    if simulating.ordinal_items():
        scale = parse_scale(simulating.options.get("scale"))
        if scale is None:
            raise ModelSpecError(
                "SBC of ordinal items needs their number of categories: "
                "declare the answers' range in the model header, e.g. "
                "'scale: 1-7'"
            )
        simulating = scale_thresholds(simulating, scale)
    return simulating, scale_loading_priors(simulating, config.prior_scale_fit)


def scale_loading_priors(partable: ParTable, factor: float) -> ParTable:
    """A copy of ``partable`` whose free loadings' prior scales are multiplied by ``factor``:
    a deliberately wrong fitting prior, which SBC must flag."""
    if factor <= 0:
        raise ModelSpecError(f"--prior-scale-fit must be positive, got {factor}")
    if factor == 1:
        return partable
    table = partable.table.copy()
    rows = (table.op == "=~") & (table.free > 0)
    table.loc[rows, "prior"] = [widen(p, factor) for p in table.loc[rows, "prior"]]
    return ParTable(table, dict(partable.options), list(partable.hypotheses), partable.text)


def _table_key(partable: ParTable, *extra: object) -> str:
    text = (
        partable.table.to_csv(index=False)
        + json.dumps(partable.options, sort_keys=True, default=str)
        + repr(extra)
    )
    return hashlib.sha256(text.encode()).hexdigest()


# ---- prior draws ----------------------------------------------------------------------------
class PriorSampler:
    """``simulate.prior_draw`` with its PyMC function compiled once instead of per call
    (prior_draw takes 0.5-3 s, as long as a whole fit of a small model).

    It builds the same model and reseeds the same random generators as ``pm.draw`` does, so
    ``PriorSampler(pt)(seed)`` equals ``prior_draw(pt, seed)`` (asserted in the tests).
    """

    def __init__(self, partable: ParTable) -> None:
        self.partable = partable
        model = pymc_model(partable, None).model
        self._fn, updates = compile_pymc([], model["par"], random_seed=False, return_updates=True)
        self._rngs = list(updates)

    def __call__(self, seed: int) -> np.ndarray:
        with _LOCK:  # the generators are shared state (Dask workers may run threads)
            reseed_rngs(self._rngs, seed)
            return sort_thresholds(self.partable, np.asarray(self._fn()))


#: prior draws tried per simulation for one whose residual covariance matrix is one
MAX_PRIOR_DRAWS = 200


def valid_prior_draw(
    draw: Callable[[int], np.ndarray], rep: Representation, seed: int
) -> np.ndarray:
    """A prior draw whose residual covariance matrix Theta is a covariance matrix.

    Independent priors on residual correlations (``y1 ~~ y5``, ``y2 ~~ y4 + y6``, ...) also
    draw matrices that are no covariance matrix (56 % of the PoliticalDemocracy model's draws
    under its SBC priors), from which no data can be simulated: NumPy's multivariate normal
    then returns data of another distribution with only a RuntimeWarning, and SBC flagged the
    residual (co)variances. Redrawing until Theta is positive semi-definite draws from the prior
    restricted to valid models; the first draw is ``seed``'s own, so a model without residual
    covariances simulates exactly what it did before.
    """
    for attempt in range(MAX_PRIOR_DRAWS):
        par = draw(
            seed
            if attempt == 0
            else int(np.random.SeedSequence([seed, attempt]).generate_state(1)[0])
        )
        theta = extend(par)[rep.theta]
        # positive semi-definite: a single indicator's residual variance may be fixed to 0
        if np.linalg.eigvalsh(theta).min() >= -1e-9 * max(1.0, np.abs(theta).max()):
            return par
    raise ModelSpecError(
        f"none of {MAX_PRIOR_DRAWS} prior draws gave a positive "
        "semi-definite residual covariance matrix: concentrate the residual "
        "correlations' priors towards 0, e.g. residual_covariances: 'beta(3,3)'"
    )


# ---- simulated data ------------------------------------------------------------------------
def simulate_dataset(
    partable: ParTable, par: np.ndarray, nobs: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Item scores and the latent scores behind them.

    Continuous scores (``scale=None``), not Likert answers: rounded data do not come from the
    continuous model, so SBC would flag the rounding rather than the inference; ordinal items
    are cut at their thresholds (categories 1..K). The latent scores are drawn from the same
    generator state ``simulate`` starts from (its first draws), which the tests check.
    """
    data = simulate(partable, par, nobs, seed, scale=None)
    eta = latent_draws(representation(partable), partable, par, nobs, np.random.default_rng(seed))
    return data, eta


# ---- fitting ----------------------------------------------------------------------------------
Prepared = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]


def _same(a: Prepared, b: Prepared) -> bool:
    return all(
        x.keys() == y.keys() and all(np.allclose(x[k], y[k]) for k in x)
        for x, y in zip(a, b, strict=True)
    )


class Fitter:
    """The fitting model, built and compiled once; ``fit`` swaps in a new data set."""

    def __init__(
        self, partable: ParTable, likelihood: str, sampler: str, nobs: int, example: pd.DataFrame
    ) -> None:
        self.partable = partable
        self.likelihood = likelihood
        self.built = pymc_model(partable, example, likelihood=likelihood)
        # The shortcut computes what a rebuilt model would hold; it is used only where it
        # agrees with the rebuild on this data set, so a change in model/ cannot make SBC
        # fit stale data: it would fall back to rebuilding (slower, never wrong).
        self.fast = self.built.likelihood == "marginal" and _same(
            self._shortcut(example), self._rebuilt(example)
        )
        self.compiled = self._compile() if sampler == "nutpie" else None

    def _compile(self):
        keep = [v for v in ("par", "moderator_quantiles") if v in self.built.model.named_vars]
        return compile_pymc_model(
            self.built.model, initial_points=self.built.initial_values, var_names=keep
        )

    def _rebuilt(self, data: pd.DataFrame) -> Prepared:
        """Data containers and starting values exactly as ``fit`` would build them (0.2-1 s)."""
        fresh = pymc_model(
            self.partable,
            data,
            likelihood=self.likelihood,
            latent_scores=self.built.centred_latents,
        )
        return (
            {v.name: np.asarray(v.get_value()) for v in fresh.model.data_vars},
            fresh.initial_values,
        )

    def _shortcut(self, data: pd.DataFrame) -> Prepared:
        """The same for the marginal likelihood without building a model (milliseconds)."""
        stats = sufficient_statistics(data[self.partable.indicators].to_numpy(dtype=float))
        updates = {
            "n_obs": stats["n"],
            "item_mean": stats["mean"],
            "item_cov_chol": stats["cov_chol"],
        }
        start = initial_values(self.built.model, self.partable, ItemMoments.of(self.partable, data))
        return updates, start

    def fit(self, data: pd.DataFrame, settings: SamplerSettings) -> xr.DataTree:
        """Posterior for ``data``, starting from the data-based values ``fit`` uses."""
        updates, start = self._shortcut(data) if self.fast else self._rebuilt(data)
        settings = settings.for_model(self.built)  # unset draws/tune/target: the model's own
        if self.compiled is None:
            with _LOCK, self.built.model, _quiet("pymc"):  # set_data changes the model
                pm.set_data(updates)
                return sample(dataclasses.replace(self.built, initial_values=start), settings)
        return self._sample_nutpie(updates, start, settings)

    def _sample_nutpie(self, updates: dict, start: dict, settings: SamplerSettings):
        # sampling.sample compiles on every call; here the compiled model is reused and only
        # its data and starting point change (~1 s instead of ~17 s per simulation).
        # nutpie and numba (seconds to import) load only when a simulation is fitted
        import nutpie

        model = self.built.model
        point = make_initial_point_fn(
            model=model, overrides=start, jitter_rvs=set(), return_transformed=True
        )(0)
        # nutpie's flat vector: the free variables' transformed values in model order
        flat = np.concatenate(
            [np.ravel(point[model.rvs_to_values[rv].name]) for rv in model.free_RVs]
        )
        compiled = dataclasses.replace(
            self.compiled.with_data(**updates), initial_point_func=lambda _seed: flat.copy()
        )
        with warnings.catch_warnings():
            # nutpie builds an empty warm-up group (0 draws), about which ArviZ warns
            warnings.filterwarnings("ignore", message="Found chain dimension to be longer")
            return nutpie.sample(
                compiled,
                draws=settings.draws,
                tune=settings.tune,
                chains=settings.chains,
                cores=settings.chains,
                seed=settings.seed,
                target_accept=settings.target_accept,
                **nutpie_options(settings.adaptation, self.built.likelihood, compiled.n_dim),
                progress_bar=False,
                save_warmup=False,
            )


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library's per-fit log lines (hundreds of fits would flood the terminal)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


# ---- quantities and ranks ----------------------------------------------------------------------
def quantities(
    partable: ParTable, rep: Representation, par: np.ndarray, mod_quantiles: np.ndarray | None
) -> tuple[list[str], np.ndarray]:
    """Names and values (chain, draw, quantity) of everything SBC ranks: each free parameter
    (named by its first table row) and every effect users read."""
    params = partable.parameters.reset_index(drop=True)
    first = params[params.free > 0].drop_duplicates("free").index.to_numpy()
    effects = effects_dataarray(
        effect_draws(partable, rep, par, mod_quantiles), sample_shape=par.shape[:2]
    )
    effects = effects.isel(effect_id=np.isin(effects.kind.values, EFFECT_KINDS))
    row_names = partable.names  # a property that rebuilds the list on every access
    names = [row_names[k] for k in first] + [str(e) for e in effects.effect_id.values]
    return names, np.concatenate([par[..., first], effects.values], axis=-1)


def effective_size(draws: np.ndarray) -> float:
    """Smallest bulk or tail ESS over the quantities (draws: chain, draw, quantity)."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    from arviz_stats.base import array_stats

    bulk = array_stats.ess(draws, chain_axis=0, draw_axis=1, method="bulk")
    tail = array_stats.ess(draws, chain_axis=0, draw_axis=1, method="tail", prob=(0.05, 0.95))
    values = np.concatenate([np.ravel(bulk), np.ravel(tail)])
    values = values[np.isfinite(values)]
    return float(values.min()) if len(values) else float(draws.shape[0] * draws.shape[1])


def thinned_ranks(
    draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int, int, float]:
    """Rank of the truth among draws thinned to about one per effective draw.

    Autocorrelated draws make ranks non-uniform even for exact inference (Talts et al. 2018),
    so every chain keeps each ``thin``-th draw with thin = ceil(draws / min ESS). Ties (a
    quantity constant in the posterior) are broken at random. Returns ranks (in 0..L), L,
    thin and the minimum ESS.
    """
    ess = effective_size(draws)
    total = draws.shape[0] * draws.shape[1]
    thin = max(1, math.ceil(total / max(ess, 1.0)))
    kept = draws[:, ::thin].reshape(-1, draws.shape[-1])
    less = (kept < truth).sum(axis=0)
    ties = (kept == truth).sum(axis=0)
    return less + rng.integers(0, ties + 1), kept.shape[0], thin, ess


# ---- one simulation ----------------------------------------------------------------------------
class Simulator:
    """Everything a worker reuses across the simulations of one configuration."""

    def __init__(self, config: SBCConfig) -> None:
        self.config = config
        self.sim_table, self.fit_table = partables(config)
        self.rep = representation(self.fit_table)
        self.draw_prior = _cached(
            _PRIOR_CACHE, _table_key(self.sim_table), lambda: PriorSampler(self.sim_table)
        )
        self._fit_key = _table_key(self.fit_table, config.likelihood, config.sampler, config.nobs)

    def run(self, index: int, seed: int) -> dict:
        """Prior draw -> data -> fit -> ranks; the record that ``ranks.csv`` gets a row of."""
        truth_par = valid_prior_draw(self.draw_prior, self.rep, seed)
        data, eta = simulate_dataset(self.sim_table, truth_par, self.config.nobs, seed)
        config = self.config
        # The first simulated data set serves as the example the model is built on (any data
        # of the right shape would do: every simulation replaces them).
        fitter = _cached(
            _FIT_CACHE,
            self._fit_key,
            lambda: Fitter(self.fit_table, config.likelihood, config.sampler, config.nobs, data),
        )
        start = time.perf_counter()
        idata = fitter.fit(data, config.settings(seed))
        fit_seconds = time.perf_counter() - start
        posterior = idata["posterior"]
        post_q = (
            posterior["moderator_quantiles"].values if "moderator_quantiles" in posterior else None
        )
        true_q = (
            moderator_quantiles(eta, self.rep, self.fit_table)[None, None]
            if post_q is not None
            else None
        )
        names, draws = quantities(self.fit_table, self.rep, posterior["par"].values, post_q)
        _, truth = quantities(self.fit_table, self.rep, truth_par[None, None], true_q)
        rng = np.random.default_rng([seed, 1])
        ranks, n_kept, thin, ess = thinned_ranks(draws, truth[0, 0], rng)
        return {
            "sim": index,
            "seed": seed,
            "L": n_kept,
            "thin": thin,
            "ess_min": round(ess, 1),
            "divergences": int(idata["sample_stats"]["diverging"].values.sum()),
            "fit_seconds": round(fit_seconds, 3),
            "error": "",
            "ranks": dict(zip(names, ranks.tolist(), strict=True)),
            "truth": dict(zip(names, truth[0, 0].tolist(), strict=True)),
        }


_PRIOR_CACHE: dict[str, PriorSampler] = {}
_FIT_CACHE: dict[str, Fitter] = {}
_SIMULATORS: dict[str, Simulator] = {}
_CACHE_SIZE = 4


_LOCK = threading.RLock()


def _cached(cache: dict, key: str, make: Callable):
    """Per-process cache (a worker keeps its compiled models between simulations)."""
    with _LOCK:
        if key not in cache:
            while len(cache) >= _CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = make()
        return cache[key]


def pin_blas_threads() -> None:
    """One BLAS thread per process: workers share the cores (oversubscription cost 9x).

    Also what ``cli.main`` does for its own process, in each spawned worker: PyTensor's "could
    not link to a BLAS" warning is silenced (the numba backend does not use that BLAS), or
    every worker would print it.
    """
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    # threadpoolctl is optional (it comes with scipy's wheels, not as our dependency)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables set by bayes_sor/__init__ still apply
        return
    threadpool_limits(1)


def run_simulation(config: SBCConfig, index: int, seed: int) -> dict:
    """One simulation; never raises: a failure becomes a record with its error message."""
    start, cpu = time.perf_counter(), time.process_time()
    try:
        pin_blas_threads()
        simulator = _cached(_SIMULATORS, config.key(), lambda: Simulator(config))
        record = simulator.run(index, seed)
    except Exception as exc:  # a failed fit is a result to report, not a reason to stop
        record = error_record(index, seed, f"{type(exc).__name__}: {exc}")
    # wall time includes compilation (first simulation of a worker) and waiting for a core
    # on a busy machine; CPU time (all threads of the process) does not
    record["sim_seconds"] = round(time.perf_counter() - start, 3)
    record["cpu_seconds"] = round(time.process_time() - cpu, 3)
    return record


def error_record(index: int, seed: int, message: str) -> dict:
    """The record of a simulation that produced no ranks."""
    return {
        "sim": index,
        "seed": seed,
        "L": None,
        "thin": None,
        "ess_min": None,
        "divergences": None,
        "fit_seconds": None,
        # Rust panics (nutpie) append a long, unhelpful stack backtrace
        "error": " ".join(message.split("Stack backtrace:")[0].split())[:500],
        "ranks": {},
        "truth": {},
    }
