"""A run directory's files: posterior.nc, estimates.csv, effects.csv, hypotheses.csv, report.md."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bayes_sor.diagnostics import BFMI_MIN, ESS_MIN, RHAT_MAX
from bayes_sor.fit import FitResult
from bayes_sor.output import staging


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency such as tabulate)."""
    def cell(value) -> str:
        if isinstance(value, float):
            return "" if pd.isna(value) else f"{value:.{digits}f}"
        return str(value).replace("|", "\\|")
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def report_markdown(result: FitResult) -> str:
    """The human-readable summary of a fit."""
    attrs = result.idata.attrs
    pt = result.partable
    diag = result.diagnostics
    interval = f"{result.ci_prob:.0%} {'HDI' if result.hdi else 'equal-tailed interval'}"
    items = ", ".join(f"{f} ({len(pt.table[(pt.table.op == '=~') & (pt.table.lhs == f)])})"
                      for f in pt.latents)
    settings = json.loads(attrs["bayes_sor_sampler_settings"])
    status = "**passed**" if diag.ok else "**FAILED**: " + "; ".join(diag.problems)
    lines = [
        "# bayes_sor run report",
        "",
        "## Model",
        "```",
        pt.text.strip(),
        "```",
        f"- latent variables (items): {items}",
        f"- identification: {pt.options.get('identification')}; likelihood: "
        f"{attrs['bayes_sor_likelihood']}",
        "",
        "## Data",
        f"- source: `{attrs['bayes_sor_data_source']}` (sha256 `{attrs['bayes_sor_data_sha256']}`)",
        f"- N = {attrs['bayes_sor_n_obs']} respondents used; {result.dataset.n_dropped} dropped "
        "by listwise deletion",
        f"- missing answers per item in the file: "
        f"{ {k: v for k, v in result.dataset.missing.items() if v} or 'none'}",
        "",
        "## Sampler",
        "- " + ", ".join(f"{k} = {v}" for k, v in settings.items() if k != "progressbar"),
        f"- software: {json.loads(attrs['bayes_sor_versions'])}",
        "",
        "## Diagnostics",
        f"Checks (R-hat <= {RHAT_MAX}, bulk/tail ESS >= {ESS_MIN}, no divergences, E-BFMI >= "
        f"{BFMI_MIN}): {status}",
        "",
        _markdown(pd.DataFrame([diag.as_dict()])),
        "",
    ]
    if len(result.hypotheses):
        lines += ["## Hypotheses", "",
                  "P(direction) is the posterior probability that the stated sign holds; "
                  "verdicts: >= .99 strong support, >= .95 support, >= .90 weak support, "
                  "<= .10 evidence against, otherwise inconclusive. Interval: " + interval + ".",
                  "", _markdown(result.hypotheses), ""]
    lines += ["## Effects", "", f"Interval: {interval}. Conditional indirect effects are "
              "evaluated at the moderator's latent mean +/- 1 SD and at the 16th/50th/84th "
              "percentiles of its latent scores.", "", _markdown(result.effects), "",
              "## Parameter estimates", "",
              _markdown(result.estimates.drop(columns=["free"])), ""]
    return "\n".join(lines)


def write_run(result: FitResult, out: Path, force: bool = False) -> Path:
    """Write all outputs of ``result`` into ``out`` atomically (temporary folder, rename)."""
    out = Path(out)
    with staging(out, force) as tmp:
        result.idata.to_netcdf(tmp / "posterior.nc")
        result.estimates.to_csv(tmp / "estimates.csv", index=False)
        result.effects.to_csv(tmp / "effects.csv", index=False)
        result.hypotheses.to_csv(tmp / "hypotheses.csv", index=False)
        result.partable.table.to_csv(tmp / "partable.csv", index=False)
        (tmp / "report.md").write_text(report_markdown(result))
    return out
