"""The measurement-invariance ladder: ``python -m bayes_sor invariance MODEL --data CSV --group
COLUMN``.

Fits the model in every group four times, each step adding lavaan's ``group.equal`` kinds:
configural (none), metric (loadings), scalar (+ intercepts), strict (+ residual variances),
and compares each step with the one before it: the posterior predictive p-value of the
chi-square discrepancy (PPP; a model that fits gives about 0.5, below 0.05 a misfit), PSIS-LOO
(ELPD) per step, and the ELPD difference to the step before with its standard error. A step
holds when its constraints cost no clear predictive accuracy: its ELPD difference is above
-2 SE (lavaan's LRT answers the same question with a chi-square difference test).

The log-likelihood is each respondent's marginal normal density under their group's implied
moments (case-wise over the answered items). The PPP's discrepancy is, per draw, the
likelihood-ratio statistic of the groups' sample moments against the implied ones,
sum_g n_g [log|Sigma_g| + tr(Sigma_g^-1 S_g) + d_g' Sigma_g^-1 d_g - log|S_g| - p], for the data
and for data replicated from the draw (their sufficient statistics drawn directly: the mean
normal, the scatter Wishart); with missing answers it is not computed.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from bayes_sor.checks.loglik import mvn_logpdf
from bayes_sor.data.missing import casewise_pointwise_loglik
from bayes_sor.errors import BayesSORError, ModelSpecError
from bayes_sor.files import write_atomic
from bayes_sor.report.document import markdown_table
from bayes_sor.runs.fit import FitResult, fit, read_model
from bayes_sor.runs.rundir import write_csv
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.matrices import implied_mean, implied_moments, representation
from bayes_sor.spec.partable import ParTable, build_partable

#: the ladder: each step's ``group.equal`` kinds
STEPS = {
    "configural": [],
    "metric": ["loadings"],
    "scalar": ["loadings", "intercepts"],
    "strict": ["loadings", "intercepts", "residuals"],
}
#: draws used for the PPP and the LOO (thinned evenly from the posterior)
MAX_DRAWS = 1000
COLUMNS = [
    "step",
    "group.equal",
    "n_free",
    "ppp",
    "elpd_loo",
    "se",
    "p_loo",
    "elpd_diff",
    "dse",
    "verdict",
    "max_r_hat",
    "min_ess_bulk",
]


@dataclass(frozen=True)
class GroupData:
    """Each group's answers (NaN where missing), in the table's group order."""

    answers: list[np.ndarray]

    @classmethod
    def of(cls, result: FitResult) -> GroupData:
        frame, labels = result.dataset.frame, result.dataset.groups.to_numpy()
        y = frame[result.partable.indicators].to_numpy(dtype=float)
        return cls([y[labels == g] for g in result.partable.groups])


def group_moments(partable: ParTable, par: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(mean (S, p), covariance (S, p, p)) of each group for draws ``par`` (S, n_par)."""
    out = []
    for g in range(1, len(partable.groups) + 1):
        rep = representation(partable, g)
        out.append((implied_mean(rep, par), implied_moments(rep, par).item_cov))
    return out


def pointwise_loglik(moments: list, data: GroupData) -> np.ndarray:
    """log density of each respondent's answers under their group's moments: (S, N), the
    respondents group by group."""
    parts = []
    for (mean, cov), y in zip(moments, data.answers, strict=True):
        if np.isnan(y).any():
            parts.append(casewise_pointwise_loglik(y, mean, cov))
        else:
            parts.append(mvn_logpdf(y[None] - mean[:, None], cov))
    return np.concatenate(parts, axis=1)


def _discrepancy(n: int, ybar, scatter, mean, cov) -> np.ndarray:
    """n [log|Sigma| + tr(Sigma^-1 S) + d' Sigma^-1 d - log|S| - p], S = scatter / n."""
    d = ybar - mean
    s = np.broadcast_to(scatter / n, (*d.shape[:-1], d.shape[-1], d.shape[-1]))
    solved = np.linalg.solve(cov, np.concatenate([s, d[..., None]], axis=-1))
    trace = np.trace(solved[..., :-1], axis1=-2, axis2=-1)
    quad = (d * solved[..., -1]).sum(axis=-1)
    logdet = np.linalg.slogdet(cov)[1] - np.linalg.slogdet(s)[1]
    return n * (logdet + trace + quad - s.shape[-1])


def ppp(moments: list, data: GroupData, rng: np.random.Generator) -> float:
    """P(discrepancy of replicated data > that of the data), NaN with missing answers."""
    if any(np.isnan(y).any() for y in data.answers):
        return float("nan")
    observed = replicated = 0.0
    for (mean, cov), y in zip(moments, data.answers, strict=True):
        n = len(y)
        ybar = y.mean(axis=0)
        scatter = (y - ybar).T @ (y - ybar)
        observed = observed + _discrepancy(n, ybar, scatter, mean, cov)
        chol = np.linalg.cholesky(cov)
        rep_mean = mean + (chol @ rng.standard_normal((*mean.shape, 1)))[..., 0] / np.sqrt(n)
        rep_scatter = np.stack(
            [stats.wishart(df=n - 1, scale=c).rvs(random_state=rng) for c in cov]
        )
        replicated = replicated + _discrepancy(n, rep_mean, rep_scatter, mean, cov)
    return float(np.mean(replicated > observed))


def step_draws(result: FitResult) -> np.ndarray:
    """At most :data:`MAX_DRAWS` draws of ``par`` (S, n_par), thinned evenly."""
    par = result.idata["posterior"]["par"].values
    par = par.reshape(-1, par.shape[-1])
    return par[np.linspace(0, len(par) - 1, min(MAX_DRAWS, len(par))).astype(int)]


def _loo(ll: np.ndarray):
    tree = xr.DataTree.from_dict(
        {
            "posterior": xr.Dataset({"x": (("chain", "draw"), np.zeros((1, ll.shape[0])))}),
            "log_likelihood": xr.Dataset({"items": (("chain", "draw", "obs"), ll[None])}),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return azs.loo(tree, pointwise=True, var_name="items")


def ladder_table(steps: dict[str, FitResult], seed: int = 0) -> pd.DataFrame:
    """One row per step: PPP, ELPD (SE), the ELPD difference to the step before (SE) and the
    verdict, with the step's convergence."""
    rng = np.random.default_rng(seed)
    rows, before = [], None
    for name, result in steps.items():
        data = GroupData.of(result)
        moments = group_moments(result.partable, step_draws(result))
        ll = pointwise_loglik(moments, data)
        elpd = _loo(ll)
        pointwise = np.asarray(elpd.elpd_i).ravel()
        row = {
            "step": name,
            "group.equal": ",".join(result.partable.options.get("group.equal") or []) or "none",
            "n_free": result.partable.n_free,
            "ppp": ppp(moments, data, rng),
            "elpd_loo": float(elpd.elpd),
            "se": float(elpd.se),
            "p_loo": float(elpd.p),
            "elpd_diff": np.nan,
            "dse": np.nan,
            "verdict": "baseline",
            "max_r_hat": result.diagnostics.max_r_hat,
            "min_ess_bulk": result.diagnostics.min_ess_bulk,
        }
        if before is not None:
            diff = pointwise - before
            row["elpd_diff"] = float(diff.sum())
            row["dse"] = float(np.sqrt(len(diff)) * diff.std(ddof=1))
            row["verdict"] = verdict(row["elpd_diff"], row["dse"])
        rows.append(row)
        before = pointwise
    return pd.DataFrame(rows, columns=COLUMNS)


def verdict(diff: float, dse: float) -> str:
    """A step holds unless its constraints cost more than 2 SE of ELPD."""
    if diff >= -2 * dse:
        return "holds"
    return f"fails: the constraints cost {-diff:.1f} ELPD (> 2 x SE {dse:.1f})"


def summary_text(table: pd.DataFrame, group: str, labels: list[str]) -> str:
    """The ladder as Markdown: the table and each step's verdict."""
    lines = [
        f"# Measurement invariance across {group} ({', '.join(labels)})",
        "",
        markdown_table(table, digits=3),
        "",
    ]
    for r in table.iloc[1:].to_dict("records"):
        lines.append(
            f"- {r['step']} ({r['group.equal']} equal): ELPD difference {r['elpd_diff']:.1f} "
            f"(SE {r['dse']:.1f}) to the step before: {r['verdict']}."
        )
    lines.append("")
    return "\n".join(lines)


def run_ladder(
    model: str | Path,
    data: str | Path | pd.DataFrame,
    group: str,
    settings: SamplerSettings,
    identification: str | None = None,
    steps: list[str] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Fit each step (:data:`STEPS`, or the ``steps`` named): :func:`ladder_table` and the
    group labels."""
    steps = steps or list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise BayesSORError(f"unknown invariance step(s) {unknown}; the steps are {list(STEPS)}")
    text = read_model(model)
    probe = build_partable(text, identification)
    if probe.ordinal_items() or probe.interactions:
        raise ModelSpecError(
            "the invariance ladder needs continuous items and no latent interaction (its PPP "
            "and LOO are the groups' normal moments'); fit each step with fit --group "
            "--group-equal and compare the runs with compare-models"
        )
    fits = {
        name: fit(
            text,
            data,
            group=group,
            group_equal=STEPS[name],
            identification=identification,
            settings=settings,
        )
        for name in steps
    }
    return ladder_table(fits, settings.seed), next(iter(fits.values())).partable.groups


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor invariance MODEL --data CSV --group COLUMN``."""
    p = sub.add_parser("invariance", help="measurement invariance ladder across groups")
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument("--data", type=Path, required=True, help="CSV of item answers")
    p.add_argument("--group", required=True, help="data column splitting the respondents")
    p.add_argument("--out", type=Path, help="folder for invariance.csv and invariance.md")
    p.add_argument("--steps", help="comma-separated steps (default all four)")
    p.add_argument("--identification", choices=["std.lv", "marker"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--seed", type=int, default=20261124)
    p.set_defaults(handler=_handler)


def _handler(args: argparse.Namespace) -> int:
    settings = SamplerSettings(
        chains=args.chains, draws=args.draws, tune=args.tune, seed=args.seed, progressbar=False
    )
    settings.validate()
    steps = [s.strip() for s in args.steps.split(",")] if args.steps else None
    table, labels = run_ladder(
        args.model, args.data, args.group, settings, args.identification, steps
    )
    text = summary_text(table, args.group, labels)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_csv(table, args.out / "invariance.csv")
        write_atomic(args.out / "invariance.md", lambda p: p.write_text(text))
    print(text)
    return 0
