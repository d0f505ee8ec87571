"""Reading a finished run folder back: one :class:`Run`, one loader (:func:`load_run`).

The report and the model-checking commands (``report``, ``ppc``, ``reliability``,
``compare-models``, ``sensitivity``, ``compare --run``) work on what ``fit`` stored: the
parameter draws ``par``, the observed items, the provenance attributes and the tables
``estimates.csv`` / ``effects.csv``. The parameter table is rebuilt from the stored model
text, so every check reads the parameters through the same :mod:`bayes_sor.spec.matrices`
indices as the fit did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.data.categories import observed_categories
from bayes_sor.data.missing import observed_moments
from bayes_sor.errors import BayesSORError, OutputError
from bayes_sor.files import write_atomic
from bayes_sor.posterior.diagnostics import Diagnostics, check_convergence
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, evaluate
from bayes_sor.posterior.rsquared import r_squared
from bayes_sor.runs.output import is_run_folder, refit_command
from bayes_sor.spec.matrices import Representation, representation
from bayes_sor.spec.partable import (
    ParTable,
    add_thresholds,
    build_partable,
    small_variance_names,
    without_mean_structure,
)

#: the tables a complete run folder holds beside posterior.nc
RUN_FILES = ("estimates.csv", "effects.csv")
TEXT_COLUMNS = ("lhs", "op", "rhs", "label", "prior", "effect", "kind", "moderator_value")
REQUIRED_ATTRS = (
    "bayes_sor_model_text",
    "bayes_sor_data_sha256",
    "bayes_sor_likelihood",
    "bayes_sor_identification",
)


@dataclass
class Run:
    """A fitted run: parameter table, draws of ``par`` (chain, draw, param) and the data.

    ``y`` is None for runs fitted to a covariance matrix (``fit --cov/--cor``); ``cov`` is then
    that matrix rescaled to divisor N and ``mean`` is None (no mean structure). With missing
    answers (NaN in ``y``) ``mean`` and ``cov`` are the saturated model's ML (EM) moments.
    """

    path: Path
    tree: xr.DataTree
    partable: ParTable
    par: np.ndarray
    y: np.ndarray | None
    cov: np.ndarray
    mean: np.ndarray | None
    n_obs: int
    #: half-width of the ROPE for hypotheses (``report --rope`` overrides the run's)
    rope: float = DEFAULT_ROPE
    #: which group of a multiple-group table ``y`` and the moments are (numbered from 1)
    group: int = 1
    #: each respondent's group label (a multiple-group run; ``None`` otherwise)
    labels: np.ndarray | None = None
    #: a group's run: the whole run's :attr:`categories` (a group may lack an answer)
    all_categories: dict[str, np.ndarray] | None = None

    @cached_property
    def categories(self) -> dict[str, np.ndarray]:
        """Each ordinal item's distinct observed answers over every respondent of the run, in
        order (code k is the k-th of them); read once per run, as callers index it per item."""
        if self.all_categories is not None:
            return self.all_categories
        ordinal = [item for item in self.items if item in self.rep.thresholds]
        return observed_categories(pd.DataFrame(self.y, columns=self.items), ordinal)

    @property
    def attrs(self) -> dict:
        return dict(self.tree.attrs)

    @property
    def likelihood(self) -> str:
        return str(self.tree.attrs["bayes_sor_likelihood"])

    @property
    def items(self) -> list[str]:
        return self.rep.items

    @cached_property
    def rep(self) -> Representation:
        return representation(self.partable, self.group)

    def by_group(self) -> list[tuple[str, Run]]:
        """Each group's label and its run: that group's answers, moments and representation
        (the same draws); one pair, the run itself labelled ``""``, for a one-group run."""
        if not self.partable.groups:
            return [("", self)]
        if self.y is None:  # one covariance matrix and N per group
            observed = self.tree["observed_data"]
            if "group_cov" not in observed:
                raise BayesSORError(
                    f"{str(self.path)!r} was fitted with groups but does not store each "
                    f"group's matrix; recreate it with '{refit_command(self.path)}'"
                )
            items = self.partable.indicators
            out = []
            for g, label in enumerate(self.partable.groups, start=1):
                s = observed["group_cov"].sel(group=label, item=items, item_=items).values
                n = int(observed["group_nobs"].sel(group=label))
                out.append((label, replace(self, cov=s * (n - 1) / n, n_obs=n, group=g)))
            return out
        if self.labels is None:
            raise BayesSORError(
                f"{str(self.path)!r} was fitted with groups but does not store each respondent's "
                f"group (an older run); recreate it with '{refit_command(self.path)}'"
            )
        out, categories = [], self.categories
        for g, label in enumerate(self.partable.groups, start=1):
            y = self.y[self.labels == label]
            mean, cov = observed_moments(y)
            group = replace(
                self,
                y=y,
                mean=mean,
                cov=cov,
                n_obs=len(y),
                group=g,
                labels=None,
                all_categories=categories,
            )
            out.append((label, group))
        return out

    @property
    def draws(self) -> np.ndarray:
        """``par`` with chains and draws flattened: (samples, param)."""
        return self.par.reshape(-1, self.par.shape[-1])

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def ci_prob(self) -> float:
        return float(self.attrs.get("bayes_sor_ci_prob", 0.95))

    @property
    def hdi(self) -> bool:
        return self.attrs.get("bayes_sor_hdi", "false") == "true"

    @property
    def interval(self) -> str:
        """How the tables' intervals were computed, in words."""
        return f"{self.ci_prob:.0%} {'HDI' if self.hdi else 'equal-tailed interval'}"

    def require_tables(self) -> None:
        """Refuse a folder without the tables the report reads."""
        absent = [f for f in RUN_FILES if not (self.path / f).is_file()]
        if absent:
            raise OutputError(
                f"{str(self.path)!r} is not a complete run folder: "
                f"{', '.join(absent)} missing; rerun the fit"
            )

    @cached_property
    def estimates(self) -> pd.DataFrame:
        return read_table(self.path / "estimates.csv")

    @cached_property
    def effects(self) -> pd.DataFrame:
        return read_table(self.path / "effects.csv")

    @cached_property
    def hypotheses(self) -> pd.DataFrame:
        return evaluate(self.partable, self.posterior, self.ci_prob, self.rope)

    @cached_property
    def r2(self) -> pd.DataFrame:
        """Each endogenous construct's R^2: posterior mean and interval."""
        return r_squared(self.partable, self.posterior["par"].values, self.ci_prob)

    @cached_property
    def diagnostics(self) -> Diagnostics:
        return check_convergence(self.tree, self.estimates, small_variance_names(self.partable))

    def latent_scores(self) -> np.ndarray | None:
        """Stored latent scores (chain, draw, obs, latent) of ``fit --save-latent``, if any."""
        post = self.posterior
        if "latent_scores" not in post:
            return None
        scores = post["latent_scores"].sel(latent=self.rep.latents)
        return scores.transpose("chain", "draw", "obs", "latent").values


def read_table(path: Path) -> pd.DataFrame:
    """A run CSV: empty cells NaN in numeric columns and '' in text columns (and names such
    as 'NA' stay names)."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""])
    text = [c for c in frame.columns if c in TEXT_COLUMNS]
    frame[text] = frame[text].astype(object).fillna("").astype(str)
    return frame


def _not_a_run(path: Path, why: str) -> BayesSORError:
    return BayesSORError(
        f"{str(path)!r} is not a bayes_sor run folder ({why}); make one with "
        f"'python -m bayes_sor fit MODEL --data DATA --out {path}'"
    )


def load_run(path: str | Path, rope: float | None = None) -> Run:
    """Open a run folder written by ``python -m bayes_sor fit`` (fully loaded, file closed);
    ``rope`` overrides the half-width recorded with the run."""
    path = Path(path)
    nc = path / "posterior.nc"
    if not path.is_dir():
        raise _not_a_run(path, "no such folder")
    if not nc.is_file() and is_run_folder(path):
        raise BayesSORError(
            f"{str(path)!r} holds a run's tables but not its posterior.nc (git does not keep it: "
            f"it is large); recreate it with '{refit_command(path)}'"
        )
    if not nc.is_file():
        raise _not_a_run(path, "no posterior.nc in it")
    try:
        tree = xr.load_datatree(nc)
    except Exception as exc:  # a truncated or foreign file: one clear message
        raise _not_a_run(path, f"posterior.nc cannot be read: {exc}") from None
    return run_from_tree(path, tree, rope)


def run_from_tree(
    path: Path, tree: xr.DataTree, rope: float | None = None, partable: ParTable | None = None
) -> Run:
    """The :class:`Run` of a posterior as ``fit`` stores it (read from ``path``, or still in
    memory: the Python API's unsaved fit, whose ``partable`` is given: a multiple-group table
    is not rebuilt from the model text, and an unsaved fit has no ``partable.csv``)."""
    missing = [a for a in REQUIRED_ATTRS if a not in tree.attrs]
    if missing or "posterior" not in tree or "observed_data" not in tree:
        raise _not_a_run(path, f"posterior.nc lacks {missing or 'the posterior/observed_data'}")
    observed = tree["observed_data"].to_dataset()
    names = [str(n) for n in tree["posterior"]["par"].coords["param"].values]
    if partable is None:
        partable = _partable(tree.attrs, names, path, summary="items" not in observed)
    par = tree["posterior"]["par"].sel(param=partable.names)
    par = par.transpose("chain", "draw", "param").values.astype(float)
    if "items" in observed:
        y = observed["items"].sel(item=partable.indicators).transpose("obs", "item").values
        y = y.astype(float)
        mean, cov = observed_moments(y)
        labels = observed["group"].values.astype(str) if "group" in observed else None
        return Run(
            path, tree, partable, par, y, cov, mean, len(y), _rope(tree.attrs, rope), labels=labels
        )
    items = partable.indicators
    s = observed["sample_cov"].sel(item=items, item_=items).values.astype(float)
    n = int(
        observed["sample_cov"].attrs.get("n_obs", observed.attrs.get("n_obs", 0))
        or tree.attrs.get("bayes_sor_n_obs")
    )
    return Run(path, tree, partable, par, None, s * (n - 1) / n, None, n, _rope(tree.attrs, rope))


def _rope(attrs: dict, rope: float | None) -> float:
    return float(rope if rope is not None else attrs.get("bayes_sor_rope", DEFAULT_ROPE))


def _candidates(attrs: dict, names: list[str], summary: bool) -> list[ParTable]:
    """Ways the fit may have completed the table: thresholds from the data, no mean structure."""

    thresholds: dict[str, int] = {}
    for n in names:
        if "|" in n:
            item = n.split("|")[0]
            thresholds[item] = thresholds.get(item, 1) + 1
    base = build_partable(
        attrs["bayes_sor_model_text"],
        identification=attrs["bayes_sor_identification"],
        ordinal=list(thresholds) or None,
        prior_scale=float(attrs.get("bayes_sor_prior_scale", 1.0)),
    )
    if "bayes_sor_moderator_values" in attrs:  # given to fit() rather than in the header
        base.options["moderator_values"] = json.loads(attrs["bayes_sor_moderator_values"])
    if thresholds:
        base = add_thresholds(base, thresholds)
    return [without_mean_structure(base) if summary else base]


def _partable(attrs: dict, names: list[str], path: Path, summary: bool) -> ParTable:
    """Rebuild the fit's parameter table from the stored model text (``partable.csv`` if not).

    Ordinal items are recognised by their threshold rows (``item|t1``) in the posterior, since
    a ``--ordinal`` option given on the command line is not part of the model text.
    """
    candidates = _candidates(attrs, names, summary)
    stored = path / "partable.csv"
    if stored.is_file():
        table = pd.read_csv(stored, keep_default_na=False, na_values={"value": [""]})
        table["value"] = pd.to_numeric(table["value"], errors="coerce")
        first = candidates[0]
        # a multiple-group fit's labels and options (approximate invariance) are the run's
        groups = json.loads(attrs.get("bayes_sor_groups", "{}"))
        options = {**first.options, **groups}
        candidates.append(ParTable(table, options, first.hypotheses, first.text))
    for partable in candidates:
        if set(partable.names) == set(names):
            return partable
    extra = sorted(set(names) ^ set(candidates[0].names))
    raise _not_a_run(path, f"its parameters do not match its model text: {extra[:6]}")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically (no half-written file is ever left in a run folder)."""
    write_atomic(Path(path), lambda p: frame.to_csv(p, index=False))
