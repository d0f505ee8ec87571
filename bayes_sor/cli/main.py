"""Command line: a thin layer over the Python API (``bayes_sor.fit``, ``bayes_sor.model.simulate``).

Exit codes: 0 success; 1 the fit ran but failed its convergence checks (unless
``--allow-warnings``); 2 bad input (one message on stderr, no traceback unless ``--debug``).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import warnings
from pathlib import Path
from typing import NoReturn

import pandas as pd

from bayes_sor.data.csv_reader import read_csv
from bayes_sor.data.scale import parse_scale
from bayes_sor.errors import BayesSORError
from bayes_sor.files import check_file_destination, write_atomic
from bayes_sor.model.simulate import (
    prior_draw,
    scale_thresholds,
    simulate,
    truth_table,
    truth_vector,
)
from bayes_sor.posterior.effects import parse_moderator_values
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, console_table, rope_width
from bayes_sor.report.run_report import write_report, write_run
from bayes_sor.runs.fit import fit, read_model
from bayes_sor.runs.output import check_destination
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.sampling.stages import Stages
from bayes_sor.spec.partable import build_partable

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_INPUT = 0, 1, 2
#: Modules that add a subcommand: each has ``add_command(subparsers)``, which registers a parser
#: whose ``handler`` default is a function ``(args) -> exit code``.
COMMAND_MODULES: tuple[str, ...] = (
    "bayes_sor.checks.ppc_report",
    "bayes_sor.checks.reliability",
    "bayes_sor.checks.loo_comparison",
    "bayes_sor.checks.sensitivity",
    "bayes_sor.cli.report_command",
    "bayes_sor.sbc.run",
    "bayes_sor.comparison.compare",
)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse with the CLI's error format: one line on stderr, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"error: {message} (see '{self.prog} --help')\n")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="lavaan-syntax model file (.lav)")
    p.add_argument(
        "--identification",
        choices=["std.lv", "marker"],
        help="latent scaling (default: the model file's, else std.lv)",
    )
    p.add_argument("--ordinal", help="'all' or comma-separated items to model as ordinal")
    p.add_argument(
        "--scale",
        help="Likert range of the answers, e.g. 1-7, or 'none' for "
        "continuous scores "
        "(default: the model file's)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="python -m bayes_sor", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model to survey data and write a run folder")
    _add_model_options(f)
    _add_fit_inputs(f)
    _add_sampler_options(f)
    _add_result_options(f)
    _add_simulate_command(sub)
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_command(sub)
    return parser


def _add_fit_inputs(f: argparse.ArgumentParser) -> None:
    """``fit``'s data (answers or summary statistics), run folder, likelihood, missing data."""
    f.add_argument("--data", type=Path, help="CSV of item answers")
    f.add_argument(
        "--cov",
        type=Path,
        help="instead of --data: CSV covariance matrix of the "
        "items (needs --nobs; no means, so no intercepts)",
    )
    f.add_argument(
        "--cor",
        type=Path,
        help="instead of --data: CSV correlation matrix (with "
        "--sd for covariances, else a standardised analysis; needs --nobs)",
    )
    f.add_argument("--sd", type=Path, help="CSV of item standard deviations for --cor")
    f.add_argument("--nobs", type=int, help="sample size behind --cov / --cor")
    f.add_argument("--out", type=Path, help="run folder (default reports/<model name>)")
    f.add_argument(
        "--likelihood", default="auto", choices=["auto", "marginal", "conditional", "quadrature"]
    )
    f.add_argument(
        "--missing",
        default="model",
        choices=["model", "listwise", "refuse"],
        help="missing answers: modelled (default; no respondent dropped), listwise "
        "deletion, or refused",
    )


def _add_sampler_options(f: argparse.ArgumentParser) -> None:
    """``fit``'s sampler settings."""
    f.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc"])
    f.add_argument("--chains", type=int, default=4)
    f.add_argument(
        "--draws",
        type=int,
        default=2000,
        help="draws per chain after tuning (2000: enough for ESS >= 400 on the "
        "bundled S-O-R models, whose latent correlations mix slowly)",
    )
    f.add_argument("--tune", type=int, default=1000)
    f.add_argument("--seed", type=int, default=20261124)
    f.add_argument("--target-accept", type=float, default=0.9)


def _add_result_options(f: argparse.ArgumentParser) -> None:
    """``fit``'s intervals, priors, moderator values, latent scores and outputs."""
    f.add_argument("--ci", type=float, default=0.95, help="interval probability (0.95)")
    f.add_argument("--hdi", action="store_true", help="highest-density instead of equal-tailed")
    f.add_argument(
        "--prior-scale",
        type=float,
        default=1.0,
        metavar="K",
        help="widen every default prior by K (e.g. 2) for a direct prior-sensitivity "
        "check against the run with the defaults",
    )
    f.add_argument(
        "--moderator-values",
        action="append",
        metavar="W=V1,V2,...",
        help="also report conditional indirect effects at these values of moderator "
        "W, in its own units (raw data units for an observed moderator); repeat for "
        "another moderator (default: the model file's 'moderator_values')",
    )
    f.add_argument(
        "--latent-scores",
        choices=["auto", "centred", "non-centred"],
        help="conditional likelihood: sample latent scores centred or as standard "
        "normal deviates (default: the model file's, else auto: centred where a "
        "construct's items carry 1.5 times its prior's information); the same "
        "posterior",
    )
    f.add_argument("--save-latent", action="store_true", help="keep latent scores in posterior")
    f.add_argument(
        "--allow-warnings",
        action="store_true",
        help="exit 0 even when convergence checks fail (they are still reported)",
    )
    f.add_argument("--force", action="store_true", help="replace an existing run in --out")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument(
        "--no-report",
        action="store_true",
        help="skip report.html / report.md and figures ('report RUN_DIR' makes them)",
    )
    f.add_argument(
        "--rope",
        type=rope_width,
        default=DEFAULT_ROPE,
        help="half-width of the "
        "region of practical equivalence for hypotheses, std.all scale (0.05)",
    )


def _add_simulate_command(sub) -> None:
    """``simulate``: answers drawn from a model at a truth or a prior draw."""
    s = sub.add_parser("simulate", help="simulate survey answers from a model and a truth file")
    _add_model_options(s)
    s.add_argument("--nobs", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--truth", type=Path, help="CSV lhs,op,rhs,value (default: a prior draw)")
    s.add_argument("--out", type=Path, required=True, help="CSV to write")
    s.add_argument("--truth-out", type=Path, help="also write the parameter values used")


def _fit(args: argparse.Namespace) -> int:
    """``fit``: fit, write the run and its report, then print the results and the verdict."""
    stage = Stages()
    out = args.out or Path("reports") / args.model.stem
    check_destination(out, args.force)
    result = _fit_result(args, stage)
    _write_fit(result, out, args, stage)
    _print_effects(result.effects)
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print("\n" + console_table(pd.read_csv(out / "hypotheses.csv")))
    report = "" if args.no_report else ", report.html, report.md"
    print(f"\nwrote {out}/ (posterior.nc, estimates.csv, effects.csv{report})")
    return _diagnostics_verdict(result.diagnostics.problems, args.allow_warnings)


def _fit_result(args: argparse.Namespace, stage: Stages):
    """The API's ``fit`` with the command line's options."""
    settings = SamplerSettings(
        sampler=args.sampler,
        chains=args.chains,
        draws=args.draws,
        tune=args.tune,
        seed=args.seed,
        target_accept=args.target_accept,
        progressbar=not args.no_progress,
    )
    return fit(
        args.model,
        args.data,
        likelihood=args.likelihood,
        identification=args.identification,
        ordinal=args.ordinal,
        scale=args.scale,
        missing=args.missing,
        settings=settings,
        ci_prob=args.ci,
        hdi=args.hdi,
        save_latent=args.save_latent,
        cov=args.cov,
        cor=args.cor,
        sd=args.sd,
        nobs=args.nobs,
        prior_scale=args.prior_scale,
        moderator_values=(
            parse_moderator_values(args.moderator_values) if args.moderator_values else None
        ),
        latent_scores=args.latent_scores,
        stage=stage,
    )


def _write_fit(result, out: Path, args: argparse.Namespace, stage: Stages) -> None:
    """The run folder, then its report (a report that fails leaves the saved fit alone)."""
    stage(f"writing {out}/ (posterior.nc, estimates.csv, effects.csv, hypotheses.csv)")
    write_run(result, out, force=args.force, report=False, rope=args.rope)
    if not args.no_report:
        stage("writing the report (report.html, report.md, figures)")
        try:
            write_report(out, args.rope)
        except Exception as exc:  # the posterior is safe on disk; the report can be redone
            _warn(
                f"the report could not be written ({type(exc).__name__}: {exc}); the fit "
                f"is saved: run 'python -m bayes_sor report {out}'"
            )
    stage("finished")
    print()  # the stage lines end here; the results follow


#: the effects the console shows (direct paths are in the report and effects.csv)
CONSOLE_EFFECTS = (
    "indirect",
    "total",
    "conditional_indirect",
    "index_moderated_mediation",
    "defined",
)
CONSOLE_COLUMNS = [
    "effect",
    "kind",
    "moderator_value",
    "mean",
    "ci.lower",
    "ci.upper",
    "p_positive",
]


def _print_effects(effects: pd.DataFrame) -> None:
    shown = effects[effects.kind.isin(CONSOLE_EFFECTS)]
    if shown.empty:
        print("no indirect, total or defined effects: the model has no mediation paths")
        return
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(shown[CONSOLE_COLUMNS].round(3).to_string(index=False))


def _diagnostics_verdict(problems: list[str], allow_warnings: bool) -> int:
    """Each failed check as a warning, the ``diagnostics:`` line, and the exit code."""
    for problem in problems:
        _warn(f"convergence check failed: {problem}")
    if not problems:
        print("diagnostics: passed")
        return EXIT_OK
    code = EXIT_OK if allow_warnings else EXIT_DIAGNOSTICS
    print(
        f"diagnostics: {len(problems)} check(s) failed (each named in a WARNING line and in "
        f"the report): exit {code}" + ("" if allow_warnings else " (--allow-warnings exits 0)"),
        flush=True,
    )
    return code


def _warn(message: str) -> None:
    """A warning as the user sees it: one ``WARNING:`` line on stderr, no source line."""
    print(f"WARNING: {message}", file=sys.stderr, flush=True)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the command line: Python's own format adds the source
    line of the library code that warned, which means nothing to a user."""
    _warn(str(message))


def _simulate(args: argparse.Namespace) -> int:

    partable = build_partable(
        read_model(args.model), identification=args.identification, ordinal=args.ordinal
    )
    if args.nobs < 1:
        raise BayesSORError("--nobs must be at least 1")
    for path in (args.out, args.truth_out):
        if path is not None:
            check_file_destination(path)
    scale = parse_scale(args.scale or partable.options.get("scale"))
    partable = scale_thresholds(partable, scale)
    if args.truth is not None:
        par = truth_vector(partable, read_csv(args.truth))
    else:
        par = prior_draw(partable, args.seed)
    data = simulate(partable, par, args.nobs, args.seed, scale=scale)
    if scale is not None:
        data = data.astype(int)
    write_atomic(args.out, lambda p: data.to_csv(p, index=False))
    if args.truth_out:
        table = truth_table(partable, par)
        write_atomic(args.truth_out, lambda p: table.to_csv(p, index=False))
    print(f"wrote {args.out} ({args.nobs} rows, {len(partable.indicators)} items)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    # Sampling runs on PyTensor's numba backend (through nutpie), which does not use the C
    # backend's BLAS; its "could not link to a BLAS" warning would only mislead users.
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option that argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    commands = {"fit": _fit, "simulate": _simulate}
    try:
        handler = commands.get(args.command) or args.handler
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return handler(args)
    except BayesSORError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("interrupted: nothing was written; earlier results are untouched", file=sys.stderr)
        return 130


def run(argv: list[str] | None = None) -> NoReturn:
    """``python -m bayes_sor`` and the ``bayes_sor`` script: :func:`main`, then exit at once.

    Tearing the interpreter down (numba's and LLVM's compiled code, PyTensor's graphs, every
    module) takes a noticeable part of a small fit (``benchmarks/RESULTS.md``), and nothing is
    left to write once :func:`main` has returned: its files are closed and renamed
    into place. The exit handlers (PyTensor's cache housekeeping) still run.
    """
    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)
