"""Prior and likelihood sensitivity by power-scaling: ``python -m bayes_sor sensitivity RUN_DIR``.

Kallioinen et al. (2023): scale the prior (or likelihood) density by a power alpha near 1 and
measure, by importance weighting of the existing draws (PSIS), how much each posterior moves
(cumulative Jensen-Shannon distance per unit of log alpha; ArviZ ``psense_summary``, diagnosis
at 0.05). On top, each structural path and effect is re-summarised under the power-scaled priors
alpha = 0.8 and 1.25 to see whether its conclusion (sign of the median, interval excluding 0)
changes: a conclusion that flips is one that depends on the prior.

The log prior is evaluated per draw in NumPy from ``par`` and the priors in the parameter table,
in the parameterisation each prior is stated in: ``[sd]`` priors at the standard deviation,
``beta`` residual-correlation priors at (rho + 1) / 2 (``normal`` ones at rho), the LKJ prior
as (eta - 1) log det R of the exogenous latents' correlation matrix (its normalising constant
cancels). Latent scores of a conditional fit (their N(0, 1)) belong to the model, not the
prior, and are not scaled.
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.checks.loglik import loglik_kind, pointwise_loglik
from bayes_sor.checks.ppc import ALL_GROUPS
from bayes_sor.checks.predictive import implied, ml_discrepancy
from bayes_sor.checks.result import CheckResult, add_check_command
from bayes_sor.errors import BayesSORError
from bayes_sor.report.document import markdown_table
from bayes_sor.runs.rundir import Run
from bayes_sor.spec.groups import approximate_rows
from bayes_sor.spec.partable import ParTable
from bayes_sor.spec.prior_text import parse_prior

THRESHOLD = 0.05
ALPHAS = (0.8, 1.25)
SAMPLE_DIMS = ["chain", "draw"]


def _logpdf(family: str, x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """log density of a prior family; ``a`` holds one column per argument (broadcast on x)."""
    # scipy.stats takes ~0.6 s to import: loaded where used, not by every command
    from scipy import stats

    a = [a[:, k] for k in range(a.shape[1])]
    return {
        "normal": lambda: stats.norm.logpdf(x, a[0], a[1]),
        "halfnormal": lambda: stats.halfnorm.logpdf(x, scale=a[0]),
        "gamma": lambda: stats.gamma.logpdf(x, a[0], scale=1 / a[1]),
        "lognormal": lambda: stats.lognorm.logpdf(x, a[1], scale=np.exp(a[0])),
        "exponential": lambda: stats.expon.logpdf(x, scale=1 / a[0]),
        "student_t": lambda: stats.t.logpdf(x, a[0], a[1], a[2]),
        "beta": lambda: stats.beta.logpdf(x, a[0], a[1]),
        "uniform": lambda: stats.uniform.logpdf(x, a[0], a[1] - a[0]),
    }[family]()


@dataclass(frozen=True)
class PriorGroup:
    """Free parameters sharing a prior family and scale, evaluated in one vectorised call.

    ``pos`` (n, k): a parameter's value is the mean of its k rows' values (k = 1 but for the
    common value of an approximately equal parameter, the mean over the groups)."""

    family: str
    # "value", "sd" (a [sd] prior), "correlation" (beta on (rho + 1) / 2) or "rho" (normal on
    # the correlation; its truncation to (-1, 1) is a constant)
    scale: str
    pos: np.ndarray
    variances: np.ndarray  # (n, 2) positions of the variances behind a correlation
    args: np.ndarray
    names: list[str]


@dataclass(frozen=True)
class LkjBlock:
    """One group's exogenous latent correlations under its LKJ prior."""

    eta: float
    rows: list[tuple[int, int, int, tuple[int, int]]]  # (pos, i, j, variance positions)
    name: str


@dataclass(frozen=True)
class Deviations:
    """Approximate invariance: each group's deviation from the common value, N(0, sd)."""

    pos: np.ndarray  # (parameters, groups)
    sd: np.ndarray
    names: list[str]  # per parameter and group, parameters first


@dataclass(frozen=True)
class PriorPlan:
    groups: list[PriorGroup]
    lkj: list[LkjBlock]
    deviations: Deviations | None
    n_exo: int


def prior_plan(partable: ParTable) -> PriorPlan:
    """Parse every free parameter's prior once (evaluating them is then pure NumPy).

    A multiple-group table's joint prior: each free parameter once (one shared across groups
    too), each group's LKJ prior, and for approximately equal parameters
    (:func:`bayes_sor.model.parameters._approximate_values`) the common value (the groups'
    mean) under the first group's prior and the groups' deviations from it under N(0, sd). The
    centred deviations' sum, a direction the draws of ``par`` do not carry, is independent of
    everything else a priori and a posteriori, so its factor cancels in the power-scaling
    weights."""
    params = partable.parameters.reset_index(drop=True)
    group = params.group if "group" in params.columns else pd.Series(1, index=params.index)
    var_pos = {
        (r.lhs, g): k
        for k, (r, g) in enumerate(zip(params.itertuples(), group, strict=True))
        if r.op == "~~" and r.lhs == r.rhs
    }
    exo = partable.exogenous
    approx = approximate_rows(partable)
    position = {f: k for k, f in reversed(list(enumerate(params.free))) if f > 0}
    firsts = params.drop_duplicates("free")
    members: dict[tuple[str, str], list[tuple[list[int], tuple, tuple[int, int], str]]] = {}
    lkj: dict[int, LkjBlock] = {}
    skip = {f for ids in approx.free for f in ids}
    for pos in firsts.index[(firsts.free > 0) & ~firsts.free.isin(skip)]:
        r, g = params.loc[pos], group[pos]
        prior = parse_prior(r.prior, f"'{r.lhs} {r.op} {r.rhs}'")
        pair = (var_pos.get((r.lhs, g), 0), var_pos.get((r.rhs, g), 0))
        if prior.family == "lkj":
            name = "lkj(exogenous latent correlations)" + _group_tag(partable, g)
            block = lkj.setdefault(g, LkjBlock(prior.args[0], [], name))
            block.rows.append((int(pos), exo.index(r.lhs), exo.index(r.rhs), pair))
            continue
        correlation = r.op == "~~" and r.lhs != r.rhs
        if correlation:  # beta on (rho + 1) / 2, normal on rho (model/parameters.py)
            scale = "correlation" if prior.family == "beta" else "rho"
        else:
            scale = "sd" if prior.on_sd else "value"
        name = partable.names[pos]
        members.setdefault((prior.family, scale), []).append(([int(pos)], prior.args, pair, name))
    deviations = None
    if len(approx):
        rows = np.array([[position[f] for f in ids] for ids in approx.free])
        for k, parameter in enumerate(approx.name):
            prior = parse_prior(params.prior[rows[k, 0]])
            members.setdefault((prior.family, "value"), []).append(
                (rows[k].tolist(), prior.args, (0, 0), f"{parameter} (common value)")
            )
        labels = partable.groups
        deviations = Deviations(
            rows,
            approx.sd.to_numpy(dtype=float),
            [f"{n} (deviation) [{label}]" for n in approx.name for label in labels],
        )
    groups = [
        PriorGroup(
            family,
            scale,
            _padded([m[0] for m in rows]),
            np.array([m[2] for m in rows]).reshape(-1, 2),
            np.array([m[1] for m in rows], dtype=float),
            [m[3] for m in rows],
        )
        for (family, scale), rows in members.items()
    ]
    return PriorPlan(groups, list(lkj.values()), deviations, len(exo))


def _group_tag(partable: ParTable, group: int) -> str:
    return f" [{partable.groups[group - 1]}]" if partable.groups else ""


def _padded(positions: list[list[int]]) -> np.ndarray:
    """Rows of positions as one (n, k) array, a short row repeating its first entry (whose
    mean is then that entry's value)."""
    width = max(len(p) for p in positions)
    return np.array([p + [p[0]] * (width - len(p)) for p in positions])


def prior_terms(
    partable: ParTable, par: np.ndarray, plan: PriorPlan | None = None
) -> tuple[np.ndarray, list[str]]:
    """log prior density of each free parameter (an LKJ prior: one term per group; an
    approximately equal parameter: its common value and each group's deviation) at draws
    ``par``.

    Returns (..., terms) and the terms' names; ``par`` is (..., param) in table order.
    """
    plan = plan or prior_plan(partable)
    values, names = [], []
    for g in plan.groups:
        if g.scale in ("correlation", "rho"):
            pos = g.pos[:, 0]
            value = _correlation(par, pos, g.variances[:, 0], g.variances[:, 1])
            value = (value + 1) / 2 if g.scale == "correlation" else value
        else:
            value = par[..., g.pos].mean(axis=-1)
            value = np.sqrt(value) if g.scale == "sd" else value
        values.append(_logpdf(g.family, value, g.args))
        names += g.names
    for block in plan.lkj:
        corr = np.broadcast_to(np.eye(plan.n_exo), (*par.shape[:-1], plan.n_exo, plan.n_exo))
        corr = corr.copy()
        for pos, i, j, (a, b) in block.rows:
            corr[..., i, j] = corr[..., j, i] = _correlation(par, pos, a, b)
        # the LKJ density up to its normalising constant, which cancels in power-scaling
        values.append((block.eta - 1) * np.linalg.slogdet(corr)[1][..., None])
        names.append(block.name)
    if plan.deviations is not None:
        dev = plan.deviations
        value = par[..., dev.pos]
        value = value - value.mean(axis=-1, keepdims=True)
        z = value / dev.sd[:, None]
        terms = -0.5 * z**2 - np.log(dev.sd[:, None]) - 0.5 * np.log(2 * np.pi)
        values.append(terms.reshape(*par.shape[:-1], -1))
        names += dev.names
    return np.concatenate(values, axis=-1), names


def _correlation(par: np.ndarray, pos, var_a, var_b) -> np.ndarray:
    return par[..., pos] / np.sqrt(par[..., var_a] * par[..., var_b])


def log_prior_terms(run: Run) -> xr.DataArray:
    """:func:`prior_terms` of a run's draws: (chain, draw, prior_term)."""
    values, names = prior_terms(run.partable, run.par)
    return xr.DataArray(values, dims=("chain", "draw", "prior_term"), coords={"prior_term": names})


def log_likelihood(run: Run) -> tuple[xr.DataArray | None, str]:
    """Pointwise log-likelihood, or the total from the covariance matrix for summary input."""
    kind, why = loglik_kind(run)
    if kind is not None:
        return pointwise_loglik(run, kind), why
    if run.y is None:  # -chi2 / 2 is the log-likelihood up to a constant (summed over groups)
        chi2 = sum(
            ml_discrepancy(g.n_obs, None, g.cov, implied(g.rep, run.draws))
            for _, g in run.by_group()
        )
        total = (-0.5 * chi2).reshape(*run.par.shape[:2], 1)
        return xr.DataArray(total, dims=("chain", "draw", "obs")), "covariance-matrix likelihood"
    return None, why


def quantities(run: Run) -> tuple[xr.Dataset, str]:
    """Structural paths and effects (chain, draw, quantity); all free parameters for a CFA."""
    post = run.posterior
    names = run.partable.names
    params = run.partable.parameters.reset_index(drop=True)
    paths = [k for k, r in enumerate(params.itertuples()) if r.op == "~" and r.free > 0]
    data: dict[str, xr.DataArray] = {}
    if paths:
        data["path"] = _named(run.par[..., paths], [names[k] for k in paths], "path")
    if "effects" in post and post["effects"].sizes.get("effect_id", 0):
        effects = post["effects"].transpose("chain", "draw", "effect_id")
        data["effect"] = _named(
            effects.values, [str(e) for e in effects.effect_id.values], "effect"
        )
    if data:
        return xr.Dataset(data), "structural paths and effects"
    free = [k for k in params.drop_duplicates("free").index if params.free[k] > 0]
    data["parameter"] = _named(run.par[..., free], [names[k] for k in free], "parameter")
    return xr.Dataset(data), "all free parameters (the model has no structural paths)"


def quantity_groups(run: Run, posterior: xr.Dataset) -> list[str]:
    """The group of each quantity of :func:`quantities` (in the table's order) of a
    multiple-group run: a parameter's group, ``(all)`` for one every group shares, an effect's
    group (or ``B - A``, a difference between groups)."""
    params = run.partable.parameters.reset_index(drop=True)
    shared = params[params.free > 0].groupby("free").group.nunique()
    row = {name: k for k, name in enumerate(run.partable.names)}
    effect_group = {}
    if "effect" in posterior:
        effects = run.posterior["effects"]
        effect_group = dict(
            zip(map(str, effects.effect_id.values), effects.group.values.astype(str), strict=True)
        )
    out = []
    for var in posterior.data_vars:
        for label in map(str, posterior[var][f"{var}_id"].values):
            if var == "effect":
                out.append(effect_group[label])
                continue
            k = row[label]
            everyone = params.free[k] > 0 and shared[params.free[k]] > 1
            out.append(ALL_GROUPS if everyone else run.partable.groups[params.group[k] - 1])
    return out


def _named(values: np.ndarray, labels: list[str], var: str) -> xr.DataArray:
    # the dim must not share the variable's name, or xarray turns the variable into a coord
    dim = f"{var}_id"
    return xr.DataArray(values, dims=("chain", "draw", dim), coords={dim: labels})


def _weighted_summary(values: np.ndarray, weights: np.ndarray, ci: float) -> tuple:
    """Weighted median, equal-tailed interval and P(> 0) of flat draws."""
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    cum /= cum[-1]
    q = np.interp([(1 - ci) / 2, 0.5, (1 + ci) / 2], cum, values[order])
    return q[1], q[0], q[2], float(weights[values > 0].sum() / weights.sum())


def conclusions(
    posterior: xr.Dataset, log_prior: xr.DataArray, ci: float, alphas: tuple[float, float] = ALPHAS
) -> pd.DataFrame:
    """Median, interval and P(> 0) at alpha = 1 and under the power-scaled priors."""
    lp = log_prior.sum("prior_term")
    weights = {1.0: np.ones(lp.size)}
    khat = {}
    for a in alphas:
        lw = lp.azstats.power_scale_lw(alpha=a, dim=SAMPLE_DIMS)
        weights[a] = np.exp(lw.values.ravel() - lw.values.max())
        raw = xr.DataArray((a - 1) * lp.values, dims=SAMPLE_DIMS)
        khat[a] = float(
            raw.azstats.pareto_khat(sample_dims=SAMPLE_DIMS, log_weights=True, tail="right")
        )
    rows = []
    for var in posterior.data_vars:
        da = posterior[var]
        dim = next(d for d in da.dims if d not in SAMPLE_DIMS)
        for label in da[dim].values:
            flat = da.sel({dim: label}).values.ravel()
            row = {"quantity": str(label), "kind": var}
            for a, w in weights.items():
                med, lo, hi, pos = _weighted_summary(flat, w, ci)
                tag = "" if a == 1.0 else f"_alpha{a:g}"
                row |= {
                    f"median{tag}": med,
                    f"ci.lower{tag}": lo,
                    f"ci.upper{tag}": hi,
                    f"p_positive{tag}": pos,
                }
            rows.append(row)
    table = pd.DataFrame(rows)
    for a in alphas:
        table[f"khat_alpha{a:g}"] = khat[a]
    return table


def _verdict(row: pd.Series, alphas: tuple[float, float]) -> tuple[bool, str]:
    """Whether the sign or the exclusion of 0 changes under a power-scaled prior."""

    def state(tag: str) -> tuple[bool, bool]:
        return (row[f"median{tag}"] > 0, row[f"ci.lower{tag}"] > 0 or row[f"ci.upper{tag}"] < 0)

    base = state("")
    changed = [f"alpha {a:g}" for a in alphas if state(f"_alpha{a:g}") != base]
    if not changed:
        return False, ""
    return True, "conclusion changes under the prior scaled by " + ", ".join(changed)


def sensitivity(
    run: Run, ci: float = 0.95, alphas: tuple[float, float] = ALPHAS
) -> tuple[pd.DataFrame, list[str]]:
    """The ``sensitivity.csv`` table and notes on what was approximated."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    import arviz_stats as azs

    posterior, what = quantities(run)
    log_prior = log_prior_terms(run)
    ll, ll_note = log_likelihood(run)
    notes = [f"checked: {what}", f"likelihood: {ll_note}"]
    every = 1 if ll is None else ll.attrs.get("every", 1)
    if every > 1:  # an integrated log-likelihood of fewer draws: the others follow it
        posterior = posterior.isel(draw=slice(None, None, every))
        log_prior = log_prior.isel(draw=slice(None, None, every))
        notes.append(f"every {every}th draw of each chain (the log-likelihood's)")
    groups = {"posterior": posterior, "log_prior": xr.Dataset({"prior": log_prior})}
    if ll is not None:
        groups["log_likelihood"] = xr.Dataset({"items": ll})
    tree = xr.DataTree.from_dict(groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ll is not None:
            sens = azs.psense_summary(tree, threshold=THRESHOLD, round_to=6)
        else:
            notes.append("no log-likelihood for this run: prior sensitivity only")
            sens = _prior_only(tree)
    table = conclusions(posterior, log_prior, ci, alphas)
    if run.partable.groups:
        table.insert(1, "group", quantity_groups(run, posterior))
    sens = sens.reindex(table.kind + "[" + table.quantity + "]")  # psense's row labels
    table["prior_sensitivity"] = sens["prior"].to_numpy()
    table["likelihood_sensitivity"] = sens["likelihood"].to_numpy()
    table["diagnosis"] = [d if d != "✓" else "" for d in sens["diagnosis"].fillna("")]
    verdicts = [_verdict(r, alphas) for _, r in table.iterrows()]
    table["prior_dependent"] = [v[0] for v in verdicts]
    table["why"] = [v[1] for v in verdicts]
    unreliable = [a for a in alphas if table[f"khat_alpha{a:g}"].iloc[0] > 0.7]
    if unreliable:
        notes.append(
            f"Pareto k > 0.7 for the power-scaling weights at alpha {unreliable}: the "
            "re-weighted summaries there are unreliable"
        )
    return table, notes


def _prior_only(tree: xr.DataTree) -> pd.DataFrame:
    """psense for the prior alone, in psense_summary's layout."""
    # arviz_stats imports scipy.stats (~0.6 s): loaded where used, not by every command
    import arviz_stats as azs

    prior = azs.psense(tree, group="prior")
    labels, values = [], []
    for var in prior.data_vars:
        (dim,) = prior[var].dims
        labels += [f"{var}[{label}]" for label in prior[var][dim].values]
        values += list(prior[var].values)
    values = np.array(values)
    return pd.DataFrame(
        {
            "prior": values,
            "likelihood": np.nan,
            "diagnosis": np.where(
                values >= THRESHOLD, "potential strong prior / weak likelihood", ""
            ),
        },
        index=labels,
    )


def report_section(table: pd.DataFrame, notes: list[str], alphas: tuple[float, float]) -> str:
    flagged = table[table.prior_dependent | (table.diagnosis != "")]
    lines = [
        "## Prior sensitivity (power-scaling)",
        "",
        f"Power-scaling sensitivity (Kallioinen et al. 2023; cumulative JS distance, "
        f"diagnosis at {THRESHOLD}) and each conclusion re-read under the prior raised to "
        f"alpha = {alphas[0]:g} and {alphas[1]:g} (`sensitivity.csv`).",
    ]
    if len(flagged):
        lines += ["", "Conclusions that depend on the prior or show sensitivity:"]
        lines += [
            f"- {r.quantity}: {'; '.join(x for x in (r.diagnosis, r.why) if x)}"
            for r in flagged.itertuples()
        ]
    else:
        lines += [
            "",
            "No structural path or effect changes its conclusion (sign, interval "
            "excluding 0) under the power-scaled priors, and none is flagged as prior "
            "sensitive.",
        ]
    # readable headers (the CSV keeps its names): interval ends under each power-scaled prior
    names = {"quantity": "quantity"} | ({"group": "group"} if "group" in table else {})
    names |= {"median": "median", "ci.lower": "lower", "ci.upper": "upper"}
    for a in alphas:
        names |= {
            f"ci.lower_alpha{a:g}": f"lower (α={a:g})",
            f"ci.upper_alpha{a:g}": f"upper (α={a:g})",
        }
    names |= {"prior_sensitivity": "prior sens.", "likelihood_sensitivity": "likelihood sens."}
    shown = table[list(names)].rename(columns=names)
    lines += ["", markdown_table(shown), "", "Notes:", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def sensitivity_check(
    run: Run, ci: float = 0.95, alphas: tuple[float, float] = ALPHAS
) -> CheckResult:
    """The check as a result: ``sensitivity.csv`` and the report section (nothing written);
    passed: no conclusion depends on the prior and none is flagged as sensitive."""
    table, notes = sensitivity(run, ci, alphas)
    cols = [
        "quantity",
        *(["group"] if "group" in table else []),
        "median",
        "ci.lower",
        "ci.upper",
        "prior_sensitivity",
        "likelihood_sensitivity",
        "prior_dependent",
    ]
    console = "\n".join(
        [
            table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"),
            "",
            *notes,
            f"wrote {run.path}/sensitivity.csv and a section of report.md and report.html",
        ]
    )
    flagged = table.prior_dependent | (table.diagnosis != "")
    return CheckResult(
        "sensitivity",
        report_section(table, notes, alphas),
        tables={"sensitivity.csv": table},
        passed=not flagged.any(),
        notes=tuple(notes),
        console=console,
    )


def _declare(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ci", type=float, default=0.95, help="interval probability (0.95)")
    p.add_argument(
        "--alpha",
        type=float,
        default=ALPHAS[0],
        help="power-scale the prior by ALPHA and 1/ALPHA (default 0.8)",
    )


def _validate(args: argparse.Namespace) -> None:
    if not 0 < args.ci < 1 or not 0 < args.alpha < 1:
        raise BayesSORError("--ci and --alpha must lie between 0 and 1 (e.g. 0.95 and 0.8)")


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``python -m bayes_sor sensitivity RUN_DIR``."""
    add_check_command(
        sub,
        "sensitivity",
        "power-scaling prior/likelihood sensitivity of a run",
        lambda run, args: [sensitivity_check(run, args.ci, (args.alpha, 1 / args.alpha))],
        declare=_declare,
        validate=_validate,
    )
