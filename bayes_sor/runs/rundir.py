"""Reading a finished run folder back, and appending sections to its ``report.md``.

The model-checking commands (``ppc``, ``reliability``, ``compare-models``, ``sensitivity``) work
on what ``fit`` stored: the parameter draws ``par``, the observed items and the provenance
attributes. The parameter table is rebuilt from the stored model text, so every check reads the
parameters through the same :mod:`bayes_sor.spec.matrices` indices as the fit did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayes_sor.data.missing import observed_moments
from bayes_sor.errors import BayesSORError
from bayes_sor.files import write_atomic
from bayes_sor.runs.output import is_run_folder, refit_command
from bayes_sor.spec.matrices import Representation, representation
from bayes_sor.spec.partable import ParTable, add_thresholds, build_partable, without_mean_structure

REQUIRED_ATTRS = ("bayes_sor_model_text", "bayes_sor_data_sha256", "bayes_sor_likelihood",
                  "bayes_sor_identification")


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
        return representation(self.partable)

    @property
    def draws(self) -> np.ndarray:
        """``par`` with chains and draws flattened: (samples, param)."""
        return self.par.reshape(-1, self.par.shape[-1])

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    def latent_scores(self) -> np.ndarray | None:
        """Stored latent scores (chain, draw, obs, latent) of ``fit --save-latent``, if any."""
        post = self.posterior
        if "latent_scores" not in post:
            return None
        scores = post["latent_scores"].sel(latent=self.rep.latents)
        return scores.transpose("chain", "draw", "obs", "latent").values


def _not_a_run(path: Path, why: str) -> BayesSORError:
    return BayesSORError(
        f"{str(path)!r} is not a bayes_sor run folder ({why}); make one with "
        f"'python -m bayes_sor fit MODEL --data DATA --out {path}'"
    )


def load_run(path: str | Path) -> Run:
    """Open a run folder written by ``python -m bayes_sor fit`` (fully loaded, file closed)."""
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
    missing = [a for a in REQUIRED_ATTRS if a not in tree.attrs]
    if missing or "posterior" not in tree or "observed_data" not in tree:
        raise _not_a_run(path, f"posterior.nc lacks {missing or 'the posterior/observed_data'}")
    observed = tree["observed_data"].to_dataset()
    names = [str(n) for n in tree["posterior"]["par"].coords["param"].values]
    partable = _partable(tree.attrs, names, path, summary="items" not in observed)
    par = tree["posterior"]["par"].sel(param=partable.names)
    par = par.transpose("chain", "draw", "param").values.astype(float)
    if "items" in observed:
        y = observed["items"].sel(item=partable.indicators).transpose("obs", "item").values
        y = y.astype(float)
        mean, cov = observed_moments(y)
        return Run(path, tree, partable, par, y, cov, mean, len(y))
    items = partable.indicators
    s = observed["sample_cov"].sel(item=items, item_=items).values.astype(float)
    n = int(observed["sample_cov"].attrs.get("n_obs", observed.attrs.get("n_obs", 0))
            or tree.attrs.get("bayes_sor_n_obs"))
    return Run(path, tree, partable, par, None, s * (n - 1) / n, None, n)


def _candidates(attrs: dict, names: list[str], summary: bool) -> list[ParTable]:
    """Ways the fit may have completed the table: thresholds from the data, no mean structure."""

    thresholds: dict[str, int] = {}
    for n in names:
        if "|" in n:
            item = n.split("|")[0]
            thresholds[item] = thresholds.get(item, 1) + 1
    base = build_partable(attrs["bayes_sor_model_text"],
                          identification=attrs["bayes_sor_identification"],
                          ordinal=list(thresholds) or None,
                          prior_scale=float(attrs.get("bayes_sor_prior_scale", 1.0)))
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
        candidates.append(ParTable(table, first.options, first.hypotheses, first.text))
    for partable in candidates:
        if set(partable.names) == set(names):
            return partable
    extra = sorted(set(names) ^ set(candidates[0].names))
    raise _not_a_run(path, f"its parameters do not match its model text: {extra[:6]}")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV atomically (no half-written file is ever left in a run folder)."""
    write_atomic(Path(path), lambda p: frame.to_csv(p, index=False))
