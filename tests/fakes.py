"""Run folders without sampling, for the model-checking tests.

A Laplace approximation of the posterior (mode of log-likelihood + log-prior, covariance from
the numerical Hessian) behaves like a real posterior for the checks (PPP, LOO, power-scaling)
at a fraction of a second per data set; ``write_run`` saves its draws in the layout of
``python -m bayes_sor fit``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy.optimize import minimize
from sem_models import MEDIATION

from bayes_sor.checks.predictive import implied, ml_discrepancy, sample_moments
from bayes_sor.checks.sensitivity import prior_plan, prior_terms
from bayes_sor.model.simulate import simulate
from bayes_sor.posterior.effects import effect_draws, effects_dataarray
from bayes_sor.runs.rundir import Run
from bayes_sor.spec.groups import with_groups
from bayes_sor.spec.matrices import implied_mean, implied_moments, representation
from bayes_sor.spec.partable import ParTable, build_partable


def truth(
    pt: ParTable,
    values: dict[str, float] | None = None,
    *,
    free: float | None = None,
    loading: float = 0.8,
    path: float = 0.3,
    variance: float = 0.4,
    covariance: float = 0.3,
    intercept: float = 0.0,
    threshold: float = 0.0,
) -> np.ndarray:
    """A parameter vector: ``values`` by row name, fixed rows at their value, every other free
    row at ``free`` if given, else by kind (loading ``=~``, path ``~``, variance, covariance,
    intercept ``~1``, threshold ``|``)."""
    values = values or {}
    by_op = {"=~": loading, "~": path, "~1": intercept, "|": threshold}
    params = pt.parameters.reset_index(drop=True)
    out = []
    for name, r in zip(pt.names, params.itertuples(), strict=True):
        if name in values:
            out.append(values[name])
        elif r.free == 0:
            out.append(float(r.value))
        elif free is not None:
            out.append(free)
        elif r.op == "~~":
            out.append(variance if r.lhs == r.rhs else covariance)
        else:
            out.append(by_op[r.op])
    return np.array(out)


def answers(pt: ParTable, values: dict[str, float], n: int, seed: int) -> pd.DataFrame:
    """``n`` unrounded answers simulated from ``truth(pt, values)`` with loadings .9, intercepts 4
    (the middle of a 1-7 scale), (co)variances .5 and paths .2 elsewhere."""
    par = truth(pt, values, loading=0.9, intercept=4.0, variance=0.5, covariance=0.5, path=0.2)
    return simulate(pt, par, n, seed=seed, scale=None)


def _free_index(pt: ParTable) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the free rows and whether each is a variance (optimised on the log scale)."""
    params = pt.parameters.reset_index(drop=True)
    firsts = params.drop_duplicates("free")
    pos = firsts.index[firsts.free > 0].to_numpy()
    variance = ((params.op == "~~") & (params.lhs == params.rhs)).to_numpy()[pos]
    return pos, variance


def laplace_draws(
    pt: ParTable,
    data: pd.DataFrame,
    n_draws: int = 1000,
    seed: int = 0,
    chains: int = 2,
    prior: bool = False,
) -> np.ndarray:
    """Draws (chains, draws, param) of a Laplace approximation to the posterior.

    Mode of log-likelihood (+ log-prior with ``prior``); curvature from the expected (Fisher)
    information of the normal likelihood (+ the numerical Hessian of the log-prior).
    Variances are optimised on the log scale.
    """
    rep = representation(pt)
    y = data[rep.items].to_numpy(float)
    mean, cov = sample_moments(y)
    pos, variance = _free_index(pt)
    group = pt.parameters.reset_index(drop=True).free.to_numpy()
    base = truth(pt)
    plan = prior_plan(pt)

    def expand(u: np.ndarray) -> np.ndarray:
        par = base.copy()
        theta = np.where(variance, np.exp(u), u)
        for k, p in enumerate(pos):
            par[group == group[p]] = theta[k]
        return par

    def neg_log_prior(u: np.ndarray) -> float:
        return -float(prior_terms(pt, expand(u)[None], plan)[0].sum()) if prior else 0.0

    def objective(u: np.ndarray) -> float:
        value = 0.5 * ml_discrepancy(len(y), mean, cov, implied(rep, expand(u)[None]))[0]
        value += neg_log_prior(u)
        return float(value) if np.isfinite(value) else 1e10

    start = np.where(variance, np.log(np.maximum(base[pos], 1e-3)), base[pos])
    mode = minimize(objective, start, method="BFGS").x
    hess = _information(rep, expand, mode, len(y))
    if prior:
        hess += _hessian(neg_log_prior, mode)
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(mode, np.linalg.inv(hess), size=chains * n_draws)
    return np.stack([expand(u) for u in z]).reshape(chains, n_draws, -1)


def _information(rep, expand, u: np.ndarray, n: int, h: float = 1e-5) -> np.ndarray:
    """Expected information of N normal observations: N/2 tr(S^-1 dS S^-1 dS) + N dmu' S^-1 dmu."""
    steps = np.eye(len(u)) * h
    plus = implied(rep, np.stack([expand(u + e) for e in steps]))
    minus = implied(rep, np.stack([expand(u - e) for e in steps]))
    d_cov, d_mean = (plus.cov - minus.cov) / (2 * h), (plus.mean - minus.mean) / (2 * h)
    inv = np.linalg.inv(implied(rep, expand(u)[None]).cov[0])
    a = inv @ d_cov
    return n / 2 * np.einsum("kij,lji->kl", a, a) + n * d_mean @ inv @ d_mean.T


def _hessian(f, x: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of a scalar function."""
    n = len(x)
    steps = np.eye(n) * h
    hess = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            hess[i, j] = hess[j, i] = (
                f(x + steps[i] + steps[j])
                - f(x + steps[i] - steps[j])
                - f(x - steps[i] + steps[j])
                + f(x - steps[i] - steps[j])
            ) / (4 * h * h)
    return hess


def write_run(
    path: Path,
    pt: ParTable,
    par: np.ndarray,
    data: pd.DataFrame,
    latent_scores: np.ndarray | None = None,
    likelihood: str = "marginal",
    summary: bool = False,
    groups: np.ndarray | None = None,
) -> Path:
    """A run folder in ``fit``'s layout: posterior.nc (par, effects), observed data, attrs.

    ``summary``: store only the (N - 1) covariance matrix of the data, as ``fit --cov`` does.
    ``groups``: each respondent's group label, for a multiple-group ``pt`` (stored with the
    data, its table as ``partable.csv`` and its group options, as ``fit --group`` does).
    """
    path.mkdir(parents=True, exist_ok=True)
    rep = representation(pt)
    posterior = xr.Dataset({"par": (("chain", "draw", "param"), par)}, coords={"param": pt.names})
    effects = effect_draws(pt, rep, par, None)
    if effects:
        posterior["effects"] = effects_dataarray(effects)
    if latent_scores is not None:
        posterior["latent_scores"] = xr.DataArray(
            latent_scores, dims=("chain", "draw", "obs", "latent"), coords={"latent": rep.latents}
        )
    items = data[rep.items]
    observed = xr.Dataset(
        {"items": (("obs", "item"), items.to_numpy(float))},
        coords={"obs": np.arange(len(items)), "item": rep.items},
    )
    if summary:
        observed = xr.Dataset(
            {"sample_cov": (("item", "item_"), items.cov().to_numpy())},
            coords={"item": rep.items, "item_": rep.items},
        )
        observed["sample_cov"].attrs["n_obs"] = len(items)
    if groups is not None:
        observed["group"] = ("obs", np.asarray(groups, dtype=str))
        pt.table.to_csv(path / "partable.csv", index=False)
    tree = xr.DataTree.from_dict({"posterior": posterior, "observed_data": observed})
    if groups is not None:
        keys = ("group", "group_labels", "group.equal", "group.partial", "approximate")
        tree.attrs["bayes_sor_groups"] = json.dumps({k: pt.options.get(k) for k in keys})
    tree.attrs.update(
        {
            "bayes_sor_model_text": pt.text,
            "bayes_sor_data_sha256": hashlib.sha256(items.to_csv().encode()).hexdigest(),
            "bayes_sor_n_obs": str(len(items)),
            "bayes_sor_likelihood": likelihood,
            "bayes_sor_identification": pt.options.get("identification", "std.lv"),
        }
    )
    tree.to_netcdf(path / "posterior.nc")
    (path / "report.md").write_text("# bayes_sor run report\n")
    return path


#: the mediation model on a 1-7 scale with one hypothesis: the end-to-end fits' model
MEDIATION_PROJECT = "---\nscale: 1-7\n---" + MEDIATION + "# H1: indirect(X -> M -> Y) > 0\n"


def mediation_project(folder: Path) -> Path:
    """``folder`` with ``model.lav`` (:data:`MEDIATION_PROJECT`) and ``data.csv``: 300
    unrounded answers (rounded to 3 decimals) with paths X -> M 0.6, M -> Y 0.5, X -> Y 0.1."""
    (folder / "model.lav").write_text(MEDIATION_PROJECT)
    pt = build_partable(MEDIATION_PROJECT)
    data = answers(pt, {"M~X": 0.6, "Y~M": 0.5, "Y~X": 0.1}, 300, seed=3)
    data.round(3).to_csv(folder / "data.csv", index=False)
    return folder


# ---- two groups ---------------------------------------------------------------------------------
GROUP_CFA = """
F1 =~ x1 + x2 + x3
F2 =~ x4 + x5 + x6
"""
GROUP_ITEMS = ["x1", "x2", "x3", "x4", "x5", "x6"]


def two_group_cfa(**values: float):
    """A scalar two-group CFA (groups a, b) and parameters in which group b differs: its
    latent means, a larger F1 variance and its own residual variances."""
    pt = with_groups(build_partable(GROUP_CFA), ["a", "b"], ["loadings", "intercepts"])
    b = {"F1~1.g2": 0.6, "F2~1.g2": -0.4, "F1~~F1.g2": 1.8, "x4~~x4.g2": 0.9}
    return pt, truth(pt, {"x1~1": 3.0, "x1~1.g2": 3.0, **b, **values})


def group_moments(pt, par: np.ndarray, group: int) -> tuple[np.ndarray, np.ndarray]:
    rep = representation(pt, group)
    return implied_mean(rep, par), implied_moments(rep, par).item_cov


def group_answers(pt, par, labels: np.ndarray, seed: int, data_par=None) -> pd.DataFrame:
    """Each respondent's answers from their group's moments (``data_par``: other values)."""
    rng = np.random.default_rng(seed)
    y = np.empty((len(labels), len(GROUP_ITEMS)))
    for g, label in enumerate(pt.groups, start=1):
        mean, cov = group_moments(pt, par if data_par is None else data_par, g)
        rows = labels == label
        y[rows] = rng.multivariate_normal(mean, cov, size=rows.sum())
    return pd.DataFrame(y, columns=GROUP_ITEMS)


def mixed_labels(n: int, seed: int) -> np.ndarray:
    """Group labels in no particular order (a group's respondents are not one block)."""
    return np.random.default_rng(seed).permutation(np.repeat(["a", "b"], n // 2))


def in_memory_run(pt, par: np.ndarray, data: pd.DataFrame, labels: np.ndarray) -> Run:
    y = data[GROUP_ITEMS].to_numpy()
    return Run("mem", None, pt, par, y, np.cov(y.T), y.mean(0), len(y), labels=labels)


def two_group_run(path: Path) -> Path:
    """A two-group run folder: draws around :func:`two_group_cfa`'s truth, answers from each
    group's moments, the groups' respondents interleaved."""
    pt, par = two_group_cfa()
    labels = mixed_labels(160, 4)
    data = group_answers(pt, par, labels, 5)
    rng = np.random.default_rng(6)
    draws = par * (1 + 0.02 * rng.standard_normal((2, 50, len(par))))
    return write_run(path, pt, draws, data, groups=labels)


#: the one-factor model's items of the summary-statistics tests
SUMMARY_ITEMS = ["y1", "y2", "y3", "y4"]


def grouped_answers(n: int, loading: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(size=n)
    return pd.DataFrame({y: loading * f + rng.normal(0, 0.6, n) for y in SUMMARY_ITEMS})


def group_covariances(*groups: tuple[str, pd.DataFrame]) -> pd.DataFrame:
    """The matrices file: a ``g`` column, the row names, then the items."""
    parts = []
    for label, data in groups:
        cov = data.cov().reset_index(names="item")
        parts.append(cov.assign(g=label)[["g", "item", *SUMMARY_ITEMS]])
    return pd.concat(parts, ignore_index=True)
