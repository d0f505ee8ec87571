"""Command line: a thin layer over the Python API (:mod:`bayes_sor.api`: ``fit``, ``simulate``).

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

from bayes_sor.api.display import MAIN_EFFECTS, summary_columns
from bayes_sor.api.fitted import ConvergenceWarning, FittedModel
from bayes_sor.api.functions import BLAS_WARNING, fit, simulate
from bayes_sor.errors import BayesSORError
from bayes_sor.files import check_file_destination, write_atomic
from bayes_sor.posterior.hypotheses import DEFAULT_ROPE, console_table, rope_width
from bayes_sor.runs.output import check_destination
from bayes_sor.sampling.stages import Stages

EXIT_OK, EXIT_DIAGNOSTICS, EXIT_INPUT = 0, 1, 2
#: Modules that add a subcommand: each has ``add_command(subparsers)``, which registers a parser
#: whose ``handler`` default is a function ``(args) -> exit code``. A command line running one
#: of this module's own commands (``fit``, ``simulate``) does not import them (SBC's, for one,
#: imports PyMC, which a fit of a recorded model build does without).
COMMAND_MODULES: tuple[str, ...] = (
    "bayes_sor.checks.ppc_report",
    "bayes_sor.checks.reliability",
    "bayes_sor.checks.loo_comparison",
    "bayes_sor.checks.invariance",
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


#: the commands this module defines itself
OWN_COMMANDS = ("fit", "simulate")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser; for ``command``, one of :data:`OWN_COMMANDS`, without the
    other modules' commands."""
    parser = _ArgumentParser(prog="python -m bayes_sor", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fit", help="fit a model to survey data and write a run folder")
    _add_model_options(f)
    _add_fit_inputs(f)
    _add_sampler_options(f)
    _add_result_options(f)
    _add_simulate_command(sub)
    for module in () if command in OWN_COMMANDS else COMMAND_MODULES:
        importlib.import_module(module).add_command(sub)
    return parser


def sample_sizes(text: str) -> int | list[int]:
    """``--nobs``: one N, or one per group separated by commas (``156,145``)."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a sample size: give a whole number, or one per group "
            "separated by commas (e.g. 156,145)"
        ) from None
    return sizes[0] if len(sizes) == 1 else sizes


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
    f.add_argument(
        "--nobs",
        type=sample_sizes,
        help="sample size behind --cov / --cor; one per group with --group, e.g. 156,145",
    )
    f.add_argument("--out", type=Path, help="run folder (default reports/<model name>)")
    f.add_argument(
        "--likelihood",
        default="auto",
        choices=["auto", "marginal", "conditional", "quadrature"],
        help="auto (default): marginal for a linear model with continuous items; quadrature for "
        "a latent interaction with one exogenous moderator, continuous items and one group; "
        "else conditional",
    )
    f.add_argument(
        "--missing",
        default="model",
        choices=["model", "listwise", "refuse"],
        help="missing answers: modelled (default; no respondent dropped), listwise "
        "deletion, or refused",
    )
    f.add_argument("--group", help="data column splitting the respondents into groups")
    f.add_argument(
        "--group-equal",
        help="kinds equal across groups (lavaan's group.equal), e.g. 'loadings,intercepts'",
    )
    f.add_argument(
        "--group-partial",
        help="rows exempt from --group-equal (lavaan's group.partial), e.g. 'visual=~x2,x3~1'",
    )


def _add_sampler_options(f: argparse.ArgumentParser) -> None:
    """``fit``'s sampler settings."""
    f.add_argument("--sampler", default="nutpie", choices=["nutpie", "pymc"])
    f.add_argument("--chains", type=int, default=4)
    f.add_argument(
        "--draws",
        type=int,
        help="draws per chain after tuning (default 2000: enough for ESS >= 400 on the "
        "bundled S-O-R models, whose latent correlations mix slowly; 600 for a one-group "
        "model with ordinal items, whose standardised thresholds mix faster; 1000 for the "
        "quadrature likelihood)",
    )
    f.add_argument("--tune", type=int, help="tuning steps (default 1000; ordinal items: 400)")
    f.add_argument("--seed", type=int, default=20261124)
    f.add_argument(
        "--target-accept",
        type=float,
        help="default 0.9; 0.85 for a one-group model with ordinal items, 0.8 for the "
        "quadrature likelihood",
    )


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
    result.save(out, force=args.force, report=not args.no_report, stage=stage)
    stage("finished")
    print()  # the stage lines end here; the results follow
    _print_effects(result.effects)
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print("\n" + console_table(pd.read_csv(out / "hypotheses.csv")))
    report = "" if args.no_report else ", report.html, report.md"
    print(f"\nwrote {out}/ (posterior.nc, estimates.csv, effects.csv{report})")
    return _diagnostics_verdict(result.diagnostics.problems, args.allow_warnings)


def _fit_result(args: argparse.Namespace, stage: Stages) -> FittedModel:
    """The API's ``fit`` with the command line's options."""
    return fit(
        args.model,
        args.data,
        cov=args.cov,
        cor=args.cor,
        sd=args.sd,
        nobs=args.nobs,
        likelihood=args.likelihood,
        missing=args.missing,
        identification=args.identification,
        ordinal=args.ordinal,
        scale=args.scale,
        sampler=args.sampler,
        chains=args.chains,
        draws=args.draws,
        tune=args.tune,
        seed=args.seed,
        target_accept=args.target_accept,
        ci=args.ci,
        hdi=args.hdi,
        prior_scale=args.prior_scale,
        moderator_values=args.moderator_values,
        latent_scores=args.latent_scores,
        group=args.group,
        group_equal=args.group_equal,
        group_partial=args.group_partial,
        save_latent=args.save_latent,
        rope=args.rope,
        progress=not args.no_progress,
        stage=stage,
    )


def _print_effects(effects: pd.DataFrame) -> None:
    shown = effects[effects.kind.isin(MAIN_EFFECTS)]
    if shown.empty:
        print("no indirect, total or defined effects: the model has no mediation paths")
        return
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(shown[summary_columns(shown)].round(3).to_string(index=False))


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
    """``simulate``: the API's ``simulate``, written to ``--out`` (and ``--truth-out``)."""
    for path in (args.out, args.truth_out):
        if path is not None:
            check_file_destination(path)
    simulated = simulate(
        args.model,
        args.nobs,
        seed=args.seed,
        truth=args.truth,
        scale=args.scale,
        identification=args.identification,
        ordinal=args.ordinal,
    )
    write_atomic(args.out, lambda p: simulated.data.to_csv(p, index=False))
    if args.truth_out:
        write_atomic(args.truth_out, lambda p: simulated.truth.to_csv(p, index=False))
    print(f"wrote {args.out} ({args.nobs} rows, {simulated.data.shape[1]} items)")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    warnings.filterwarnings("ignore", message=BLAS_WARNING)
    argv = sys.argv[1:] if argv is None else argv
    # the command is the first word that is not an option (the only option before it, --debug,
    # takes no value)
    command = next((word for word in argv if not word.startswith("-")), None)
    try:
        args = _parser(command).parse_args(argv)
    except SystemExit as exc:  # --help, or a malformed option that argparse has reported
        return exc.code if isinstance(exc.code, int) else EXIT_INPUT
    commands = {"fit": _fit, "simulate": _simulate}
    try:
        handler = commands.get(args.command) or args.handler
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            # a failed convergence check is printed as a WARNING line of its own, with the
            # verdict and the exit code (the API's one ConvergenceWarning would repeat them)
            warnings.simplefilter("ignore", ConvergenceWarning)
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
