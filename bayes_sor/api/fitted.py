"""A fitted model as a notebook holds it: :class:`FittedModel`, what :func:`bayes_sor.fit`
and :func:`bayes_sor.load` return.

It reads the same :class:`~bayes_sor.runs.rundir.Run` the command line's checks and report
read, whether the fit is still in memory or was loaded from a run folder, so a notebook and
the command line see the same numbers; it writes files only when asked (``save``,
``report``, a check's ``write=True``).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import xarray as xr

from bayes_sor.api.display import summary_html, summary_text
from bayes_sor.checks.ppc import predictive_check
from bayes_sor.checks.ppc_report import items_figure, ppc_check, residual_figure
from bayes_sor.checks.reliability import reliability_check
from bayes_sor.checks.result import CheckResult, write_result
from bayes_sor.checks.sensitivity import sensitivity_check
from bayes_sor.errors import BayesSORError, OutputError
from bayes_sor.posterior.diagnostics import Diagnostics
from bayes_sor.report.figures import (
    conditional_curves,
    conditional_plot,
    forest_plot,
    moderated_paths,
    rank_plot,
    worst_parameters,
)
from bayes_sor.report.run_report import report_attrs, report_run, write_report, write_run
from bayes_sor.runs.fit import FitResult
from bayes_sor.runs.rundir import Run, read_table, run_from_tree
from bayes_sor.sampling.stages import StageReporter, quiet
from bayes_sor.spec.partable import ParTable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: the folder name a fit not yet saved carries (no file is ever written under it)
UNSAVED = Path("<unsaved>")


class ConvergenceWarning(UserWarning):
    """A fit failed one of its convergence checks (R-hat, ESS, divergences, E-BFMI)."""


class FittedModel:
    """A fitted Bayesian SEM: posterior, tables, checks, plots and its run folder.

    Made by :func:`bayes_sor.fit` (in memory until :meth:`save`) or :func:`bayes_sor.load`
    (a run folder of ``python -m bayes_sor fit``). In Jupyter it shows the convergence verdict,
    the hypotheses with their verdicts and the main effects with their intervals.

    Attributes
    ----------
    name : str
        The model file's name (without ``.lav``), or the run folder's.
    path : pathlib.Path or None
        The run folder it was saved to or loaded from; None while only in memory.
    fit_result : bayes_sor.FitResult or None
        The fit itself (built PyMC model, data set, sampler settings); None when loaded.
    """

    def __init__(
        self, run: Run, name: str, fit_result: FitResult | None = None, saved: bool = True
    ) -> None:
        self._run = run
        self.name = name
        self.fit_result = fit_result
        self.path: Path | None = run.path if saved else None

    # ---- made from a fit or a folder ----------------------------------------------------------
    @classmethod
    def from_fit(cls, result: FitResult, name: str, rope: float) -> FittedModel:
        """The model of a fit still in memory, read as its saved run folder would be.

        Parameters
        ----------
        result : FitResult
            What :func:`bayes_sor.runs.fit.fit` returned.
        name : str
            The model's name (shown in the summary and the comparison's title).
        rope : float
            Half-width of the hypotheses' region of practical equivalence.

        Returns
        -------
        FittedModel
        """
        result.idata.attrs.update(report_attrs(result, rope))
        run = run_from_tree(UNSAVED, result.idata, rope, result.partable)
        # the tables as a run folder's CSV files read back, so an unsaved fit shows what a
        # saved one (and the command line) shows
        run.__dict__["estimates"] = _as_saved(result.estimates)
        run.__dict__["effects"] = _as_saved(result.effects)
        # what the fit judged already, from the same draws and tables (~0.2 s of Study A)
        run.__dict__["diagnostics"] = result.diagnostics
        if rope == result.rope:
            run.__dict__["hypotheses"] = result.hypotheses
        return cls(run, name, result, saved=False)

    # ---- the posterior and its tables ---------------------------------------------------------
    @property
    def idata(self) -> xr.DataTree:
        """The posterior as an ArviZ DataTree (``posterior``, ``sample_stats``,
        ``observed_data``), so ``az.summary`` and ``az.plot_*`` work on it directly."""
        return self._run.tree

    @property
    def partable(self) -> ParTable:
        """The parameter table the model was fitted with."""
        return self._run.partable

    @property
    def estimates(self) -> pd.DataFrame:
        """Every parameter (``estimates.csv``): mean, median, SD, interval, R-hat, ESS,
        ``std.all``, prior."""
        return self._run.estimates

    @property
    def effects(self) -> pd.DataFrame:
        """Direct, indirect, total, conditional indirect, IMM and defined effects
        (``effects.csv``)."""
        return self._run.effects

    @property
    def hypotheses(self) -> pd.DataFrame:
        """The model file's hypotheses judged (``hypotheses.csv``): P(direction), P(ROPE),
        verdict."""
        return self._run.hypotheses

    @property
    def r2(self) -> pd.DataFrame:
        """R-squared of each endogenous construct: posterior mean and interval."""
        return self._run.r2

    @property
    def diagnostics(self) -> Diagnostics:
        """The convergence checks: worst R-hat and ESS, divergences, E-BFMI, problems named."""
        return self._run.diagnostics

    @property
    def converged(self) -> bool:
        """True when every convergence check passed (the verdict as data, not an exit code)."""
        return self.diagnostics.ok

    @property
    def interval(self) -> str:
        """The tables' intervals in words, e.g. ``95% equal-tailed interval``."""
        return self._run.interval

    # ---- display ------------------------------------------------------------------------------
    def _title(self) -> str:
        draws = self._run.par.shape
        where = f", saved in {self.path}" if self.path is not None else ""
        return (
            f"{type(self).__name__} {self.name!r}: N = {self._run.n_obs}, "
            f"{self._run.likelihood} likelihood, {draws[0]} chains x {draws[1]} draws{where}"
        )

    def _summary(self) -> tuple:
        return self._title(), self.diagnostics, self.hypotheses, self.effects, self.interval

    def __repr__(self) -> str:
        return summary_text(*self._summary())

    def _repr_html_(self) -> str:
        return summary_html(*self._summary())

    # ---- the run folder -----------------------------------------------------------------------
    def save(
        self,
        path: str | Path,
        force: bool = False,
        report: bool = True,
        stage: StageReporter = quiet,
    ) -> Path:
        """Write the run folder ``python -m bayes_sor fit --out PATH`` writes.

        Parameters
        ----------
        path : str or pathlib.Path
            The run folder; :func:`bayes_sor.load` and every command read it back.
        force : bool
            Replace an existing run there (never a folder of other files).
        report : bool
            Also write ``report.html``, ``report.md`` and the figures; a report that fails
            is a warning (the fit is saved; :meth:`report` redoes it).
        stage : callable
            Told as each stage begins (the command line prints them).

        Returns
        -------
        pathlib.Path
            The run folder.
        """
        path = Path(path)
        if self.fit_result is None:
            raise OutputError(
                f"this model was loaded from {str(self.path)!r}, which is its run folder; "
                "copy that folder to keep it elsewhere"
            )
        stage(f"writing {path}/ (posterior.nc, estimates.csv, effects.csv, hypotheses.csv)")
        write_run(self.fit_result, path, force=force, report=False, rope=self._run.rope)
        self._run.path = self.path = path
        if report:
            stage("writing the report (report.html, report.md, figures)")
            try:
                report_run(self._run)
            except Exception as exc:  # the posterior is safe on disk; the report can be redone
                warnings.warn(
                    f"the report could not be written ({type(exc).__name__}: {exc}); the fit "
                    f"is saved: run 'python -m bayes_sor report {path}'",
                    stacklevel=2,
                )
        return path

    def report(self, path: str | Path | None = None, force: bool = False) -> Path:
        """Write the report (``report.html``, ``report.md``, figures) into the run folder.

        Parameters
        ----------
        path : str or pathlib.Path, optional
            A run folder to save the fit into first; by default the folder it was saved to
            or loaded from (the report then includes the sections checks have added).
        force : bool
            Replace an existing run in ``path``.

        Returns
        -------
        pathlib.Path
            The ``report.html`` written.
        """
        if path is not None and (self.path is None or Path(path) != self.path):
            return self.save(path, force=force) / "report.html"
        write_report(self.require_saved("report"), self._run.rope)
        return self.require_saved("report") / "report.html"

    def require_saved(self, what: str) -> Path:
        """The run folder, which ``what`` reads.

        Parameters
        ----------
        what : str
            What needs the folder, for the message.

        Returns
        -------
        pathlib.Path

        Raises
        ------
        OutputError
            While the fit is only in memory, naming the fix (:meth:`save`).
        """
        if self.path is None:
            raise OutputError(
                f"{what} reads the run folder, and this fit is not saved yet: "
                "save it first, e.g. res.save('reports/my_model')"
            )
        return self.path

    @property
    def run(self) -> Run:
        """The run as the command line's checks read it (the same object every check takes)."""
        return self._run

    # ---- checks -------------------------------------------------------------------------------
    def _checked(self, result: CheckResult, write: bool) -> CheckResult:
        """The check's result; written into the run folder (files and report section) only
        when asked. Its console text, which names the files the command writes, is left out."""
        if write:
            write_result(result, self.require_saved("writing a check's results"))
        figures = {name: _shown(figure) for name, figure in result.figures.items()}
        return replace(result, figures=figures, console="")

    def ppc(
        self, draws: int = 1000, seed: int = 1, ci: float = 0.95, write: bool = False
    ) -> CheckResult:
        """Posterior predictive checks (``python -m bayes_sor ppc``).

        Parameters
        ----------
        draws : int
            Posterior draws to replicate data sets from (evenly thinned).
        seed : int
            Seed of the replications.
        ci : float
            Interval probability of the predictive intervals.
        write : bool
            Also write the tables, figures and report section into the run folder.

        Returns
        -------
        CheckResult
            ``tables`` (``fit_measures.csv``: PPP, SRMR, BRMSEA, BCFI, LOO; ``residuals.csv``;
            ``ppc_items.csv``), ``figures`` (item distributions, residual correlations),
            ``text`` (the report section) and ``passed`` (PPP >= 0.05).
        """
        _probability(ci, "ci")
        if draws < 1:
            raise BayesSORError(f"draws must be at least 1, got {draws}")
        return self._checked(ppc_check(self._run, draws, seed, ci), write)

    def reliability(self, ci: float = 0.95, write: bool = False) -> CheckResult:
        """Omega, AVE, HTMT and Fornell-Larcker probabilities (``python -m bayes_sor
        reliability``).

        Parameters
        ----------
        ci : float
            Interval probability.
        write : bool
            Also write ``reliability.csv`` and the report section into the run folder.

        Returns
        -------
        CheckResult
            ``tables["reliability.csv"]``, the report section as ``text``, ``passed``.
        """
        _probability(ci, "ci")
        return self._checked(reliability_check(self._run, ci), write)

    def sensitivity(self, ci: float = 0.95, alpha: float = 0.8, write: bool = False) -> CheckResult:
        """Power-scaling prior and likelihood sensitivity (``python -m bayes_sor
        sensitivity``).

        Parameters
        ----------
        ci : float
            Interval probability.
        alpha : float
            The prior and likelihood are power-scaled by ``alpha`` and ``1 / alpha``.
        write : bool
            Also write ``sensitivity.csv`` and the report section into the run folder.

        Returns
        -------
        CheckResult
            ``tables["sensitivity.csv"]``, the report section as ``text``, ``passed`` (no
            conclusion depends on the prior).
        """
        _probability(ci, "ci")
        _probability(alpha, "alpha")
        return self._checked(sensitivity_check(self._run, ci, (alpha, 1 / alpha)), write)

    # ---- plots --------------------------------------------------------------------------------
    def plot_diagram(self) -> Figure | None:
        """The path diagram with posterior path estimates and R-squared (a CFA: its
        measurement model); None for a model with neither."""
        run = self._run
        # the diagram imports matplotlib (~0.5 s): only when it is drawn, not for every command
        from bayes_sor.report.diagram import path_diagram

        return _shown(path_diagram(run.partable, run.estimates, run.interval, run.r2))

    def plot_effects(self) -> Figure | None:
        """Forest plot of the direct, indirect and total effects; None without any."""
        return _shown(forest_plot(self._run.effects, self._run.interval))

    def plot_conditional(self, moderator: str | None = None) -> Figure | None:
        """Conditional (indirect) effects along a moderator, with the Johnson-Neyman-style
        region where the effect's sign is probable.

        Parameters
        ----------
        moderator : str, optional
            Only the effects this moderator moderates (default: every moderator's).

        Returns
        -------
        matplotlib.figure.Figure or None
            None when the model has no moderated path (of ``moderator``).
        """
        run = self._run
        moderated = moderated_paths(run.partable, run.effects)
        if moderator is not None:
            moderators = {m for _, m, _ in moderated}
            if moderator not in moderators:
                raise BayesSORError(
                    f"{moderator!r} moderates no path of this model; its moderators: "
                    f"{sorted(moderators) or 'none'}"
                )
            moderated = [m for m in moderated if m[1] == moderator]
        curves = conditional_curves(
            run.partable, run.posterior["par"].values, moderated, run.ci_prob
        )
        return _shown(conditional_plot(curves, f"{run.ci_prob:.0%} interval"))

    def plot_ranks(self, params: list[str] | None = None) -> Figure | None:
        """ArviZ rank plots, one panel per parameter, chains as lines.

        Parameters
        ----------
        params : list of str, optional
            Parameters as ``par`` names them (``"IB~CT"``, ``"CT=~ct1"``); default: those
            with the worst R-hat and ESS.

        Returns
        -------
        matplotlib.figure.Figure or None
        """
        return _shown(rank_plot(self._run.tree, params or worst_parameters(self._run.estimates)))

    def plot_ppc(
        self, kind: str = "items", draws: int = 1000, seed: int = 1, ci: float = 0.95
    ) -> Figure | None:
        """A posterior predictive figure.

        Parameters
        ----------
        kind : {"items", "residuals"}
            Observed vs replicated item distributions, or observed minus predicted
            correlations with the pairs outside their predictive interval marked.
        draws, seed, ci
            As for :meth:`ppc`.

        Returns
        -------
        matplotlib.figure.Figure or None
            None for ``"items"`` of a fit to summary statistics (no answers to draw).
        """
        draw = {"items": items_figure, "residuals": residual_figure}
        if kind not in draw:
            raise BayesSORError(f"kind must be one of {sorted(draw)}, got {kind!r}")
        _probability(ci, "ci")
        result = predictive_check(self._run, draws, seed, ci)
        if kind == "items" and result.observed is None:
            return None
        return _shown(draw[kind](result))


def _as_saved(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as its CSV in a run folder reads back (text cells '', numbers as floats)."""
    return read_table(io.StringIO(frame.to_csv(index=False)))


def _probability(value: float, name: str) -> None:
    if not 0 < value < 1:
        raise BayesSORError(f"{name} must lie between 0 and 1 (e.g. 0.95), got {value}")


def _shown(fig: Figure | None) -> Figure | None:
    """``fig`` ready to be shown as the value a notebook cell returns: once, and as an image.

    Our figures are made without pyplot, and Jupyter's inline backend registers the display
    of figures as images only once pyplot has loaded it (pyplot loads its backend at the first
    figure it makes, or at ``draw_if_interactive``, which without a pyplot figure draws
    nothing); a figure ArviZ made through pyplot is let go of, so that the notebook shows it
    once and a script does not keep it open."""
    # pyplot loads the notebook's inline backend (elsewhere the backend matplotlib picks)
    import matplotlib.pyplot as plt

    plt.draw_if_interactive()
    if fig is not None and fig.canvas.manager is not None:
        plt.close(fig)
    return fig
