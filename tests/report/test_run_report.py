"""The run report: report.html (self-contained, every hypothesis and effect), report.md, the
``report`` command working from a run folder's files alone, and hypotheses with a ROPE."""

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from fakes import answers
from sem_models import MEDIATION

from bayes_sor.cli.main import main
from bayes_sor.posterior.diagnostics import check_convergence
from bayes_sor.posterior.hypotheses import evaluate, verdict
from bayes_sor.report.document import (
    Document,
    Markdown,
    Paragraph,
    Section,
    appended_sections,
    data_uri,
    nest_headings,
    to_html,
    to_markdown,
)
from bayes_sor.report.run_report import (
    FIGURE_FILES,
    deviation_blocks,
    ladder_blocks,
    per_group_table,
    write_report,
    write_run,
)
from bayes_sor.report.sections import append_report_section
from bayes_sor.runs.fit import fit
from bayes_sor.runs.rundir import load_run
from bayes_sor.sampling.samplers import SamplerSettings
from bayes_sor.spec.partable import build_partable

MODEL = (
    "---\nscale: none\n---\n# A small S-O-R model for the report tests"
    + MEDIATION
    + "# H1: M ~ X > 0\n# H2: indirect(X -> M -> Y) > 0\n# H3: Y ~ X > 0\n# H4: ab > 0\n"
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One small marginal fit (2 chains x 200 draws) and its run folder."""
    folder = tmp_path_factory.mktemp("report")
    data = answers(build_partable(MODEL), {"M~X": 0.6, "Y~M": 0.5, "Y~X": 0.0}, 250, seed=5)
    settings = SamplerSettings(chains=2, draws=200, tune=200, seed=3, progressbar=False)
    result = fit(MODEL, data.round(3), settings=settings)
    out = write_run(result, folder / "run")
    return result, out


class _Page(HTMLParser):
    """Collects what the tests look at: tags, image sources and tables (rows of cells)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.tables: list[dict] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th", "caption"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell))
        elif tag == "caption" and self._cell is not None:
            self.tables[-1]["caption"] = "".join(self._cell)
        if tag in ("td", "th", "caption"):
            self._cell = None

    def table(self, caption_start: str) -> list[list[str]]:
        """Body rows of the table whose caption starts with ``caption_start``."""
        found = [t for t in self.tables if t["caption"].startswith(caption_start)]
        assert found, f"no table captioned {caption_start!r}"
        return found[0]["rows"][1:]


def _page(folder: Path) -> _Page:
    page = _Page()
    page.feed((folder / "report.html").read_text(encoding="utf-8"))
    page.close()
    return page


def _hypothesis_rows(page: _Page) -> list[list[str]]:
    return next(
        t["rows"][1:]
        for t in page.tables
        if t["rows"] and t["rows"][0][:2] == ["hypothesis", "statement"]
    )


def test_fit_writes_a_self_contained_html_report(fitted):
    _, out = fitted
    page = _page(out)
    assert {"html", "head", "body", "h1", "table", "figure"} <= set(page.tags)
    assert not {"script", "link", "iframe"} & set(page.tags)  # nothing to fetch or run
    assert len(page.images) == 3  # path diagram, forest plot, rank plots (no moderator)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert "http://" not in (out / "report.html").read_text()


def test_html_has_every_hypothesis_and_effect(fitted):
    _, out = fitted
    page = _page(out)
    hypotheses = pd.read_csv(out / "hypotheses.csv")
    rows = _hypothesis_rows(page)
    assert [r[0] for r in rows] == list(hypotheses.hypothesis)
    assert [r[1] for r in rows] == list(hypotheses.statement)
    effects = pd.read_csv(out / "effects.csv", keep_default_na=False)
    shown = page.table("Effects (effects.csv)")
    assert len(shown) == len(effects)
    assert [r[0] for r in shown] == list(effects.effect)
    assert [float(r[3]) for r in shown] == pytest.approx(effects["mean"].astype(float), abs=6e-4)
    estimates = pd.read_csv(out / "estimates.csv")
    assert len(page.table("Parameter estimates")) == len(estimates)


def test_sections_figures_and_markdown_agree(fitted):
    _, out = fitted
    html_text = (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    for title in (
        "1. Model and data",
        "2. Hypotheses",
        "3. Path diagram",
        "4. Effects",
        "5. Diagnostics",
        "6. Checks and comparison",
        "7. Parameter estimates",
    ):
        assert title in html_text and f"## {title}" in markdown
    for name in ("diagram", "forest", "rank"):
        path = out / FIGURE_FILES[name]
        assert path.read_bytes().startswith(PNG)
        assert f"]({path.name})" in markdown
    assert not (out / FIGURE_FILES["conditional"]).exists()  # the model has no moderator
    # Provenance a co-author needs to repeat the run.
    for text in ("N = 250", "sha256", "seed", "chains = 2", "pymc", "normal(0,10)", "x1, x2, x3"):
        assert text in markdown


def test_hypotheses_carry_rope_and_standardised_values(fitted):
    result, out = fitted
    table = pd.read_csv(out / "hypotheses.csv")
    assert list(table.rope_scale) == ["std.all", "std.all", "std.all", "raw"]
    assert (table.rope == 0.05).all()
    assert table.verdict.iloc[0] == "strong support"
    # std.all of the a path is the std.all column of estimates.csv
    est = result.estimates.set_index(["lhs", "op", "rhs"])
    assert table["std.mean"].iloc[0] == pytest.approx(est.loc[("M", "~", "X"), "std.all"])
    # the ROPE is read on |std| <= rope: a wide ROPE makes the null path practically zero
    wide = evaluate(result.partable, result.idata["posterior"].to_dataset(), rope=2.0)
    assert (wide.p_rope == 1).all() and (wide.verdict == "practically zero").all()


def test_verdict_words_follow_the_stated_thresholds():
    assert verdict(0.995) == "strong support"
    assert verdict(0.96, p_rope=0.2) == "support"
    assert verdict(0.96, p_rope=0.6) == "support, probably negligible"
    assert verdict(0.5, p_rope=0.97) == "practically zero"
    assert verdict(0.03) == "evidence against"
    assert verdict(0.5) == "inconclusive"


def test_report_command_rebuilds_everything_from_the_folder(fitted, tmp_path, capsys):
    _, out = fitted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    for name in ["report.html", "report.md", *FIGURE_FILES.values()]:
        (copy / name).unlink(missing_ok=True)
    assert main(["report", str(copy), "--rope", "0.1"]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (copy / "report.html").is_file() and (copy / FIGURE_FILES["diagram"]).is_file()
    assert (pd.read_csv(copy / "hypotheses.csv").rope == 0.1).all()
    assert "P(ROPE ±0.1)" in (copy / "report.md").read_text()


def test_sections_other_stages_add_are_kept_and_shown(fitted, tmp_path):
    _, out = fitted
    copy = tmp_path / "checks"
    shutil.copytree(out, copy)
    append_report_section(copy, "ppc", "## Model checking\n\n**PPP = 0.42**: no misfit.")
    pd.DataFrame({"parameter": ["M~X"], "ml": [0.61], "bayes": [0.60]}).to_csv(
        copy / "comparison.csv", index=False
    )
    pd.DataFrame({"construct": ["X"], "omega": [0.83]}).to_csv(
        copy / "reliability.csv", index=False
    )
    shutil.copy(copy / FIGURE_FILES["forest"], copy / "ppc_items.png")
    elsewhere = tmp_path / "cmp"
    elsewhere.mkdir()
    shutil.copy(copy / FIGURE_FILES["forest"], elsewhere / "comparison.png")
    append_report_section(
        copy,
        "compare",
        "### Method comparison\n\n![by method](../cmp/comparison.png)\n\n![gone](missing.png)",
    )
    write_report(copy)
    write_report(copy)  # twice: the appended section must not be duplicated
    markdown = (copy / "report.md").read_text()
    assert markdown.count("<!-- bayes_sor:ppc:begin -->") == 1
    assert (
        markdown.index("## 6. Checks")
        < markdown.index("PPP = 0.42")
        < markdown.index("## 7. Parameter")
    )
    page = _page(copy)
    # the compare stage wrote its own section, so its table is not repeated from the CSV
    assert not any(t["caption"].startswith("comparison.csv") for t in page.tables)
    assert len(page.images) == 5  # ppc_items.png and the linked comparison figure too
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    html_text = (copy / "report.html").read_text()
    assert "[figure not embedded: gone]" in html_text
    assert page.table("reliability.csv")[0] == ["X", "0.830"]  # no section: the CSV itself
    assert "<strong>PPP = 0.42</strong>" in html_text and "<h3>Model checking</h3>" in html_text
    # the ppc command's own rerun still replaces its section in place
    append_report_section(copy, "ppc", "## Model checking\n\nPPP = 0.50 now.")
    markdown = (copy / "report.md").read_text()
    assert "PPP = 0.50 now." in markdown and "PPP = 0.42" not in markdown


def test_no_report_and_a_failing_report_keep_the_fit(fitted, tmp_path, monkeypatch):
    result, _ = fitted
    plain = write_run(result, tmp_path / "plain", report=False)
    assert (plain / "posterior.nc").is_file() and not (plain / "report.html").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr("bayes_sor.report.run_report.write_report", broken)
    with pytest.warns(UserWarning, match="python -m bayes_sor report"):
        kept = write_run(result, tmp_path / "kept")
    assert (kept / "estimates.csv").is_file()


def test_a_replaced_run_keeps_its_readme(fitted, tmp_path):
    result, _ = fitted
    out = write_run(result, tmp_path / "noted", report=False)
    (out / "README.md").write_text("how to regenerate")
    (out / "ppc_items.png").write_bytes(PNG)  # belongs to the old posterior: must go
    write_run(result, out, force=True, report=False)
    assert (out / "README.md").read_text() == "how to regenerate"
    assert not (out / "ppc_items.png").exists()


def test_report_of_a_missing_folder_is_one_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "run folder" in capsys.readouterr().err


def test_documents_escape_text_and_round_trip_appended_sections(tmp_path):
    doc = Document(
        "T <1>",
        "sub",
        [
            Section(
                "S & s",
                [
                    Paragraph("a <script>x</script> `code` **bold**"),
                    Markdown("## Added\n\n| a |\n|---|\n| <b> |", "extra"),
                ],
            )
        ],
    )
    page = to_html(doc)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<code>code</code>" in page and "<strong>bold</strong>" in page
    assert "<h3>Added</h3>" in page and "&lt;b&gt;" in page
    assert '<div class="table-wrap"><table>' in page  # a stage's wide table scrolls in its box
    markdown = to_markdown(doc)
    # report.md nests the stage's heading under the report's "## S & s" as well
    assert appended_sections(markdown) == {"extra": "### Added\n\n| a |\n|---|\n| <b> |"}
    assert appended_sections(
        to_markdown(
            Document(
                "T", "s", [Section("S", [Markdown(appended_sections(markdown)["extra"], "extra")])]
            )
        )
    ) == appended_sections(markdown)
    # a comment line in a stage's code block is no heading
    assert nest_headings("# Fit\n```\n# H1: M ~ X > 0\n```\n## Notes") == (
        "### Fit\n```\n# H1: M ~ X > 0\n```\n#### Notes"
    )


def _not_embedded(folder: Path) -> list[str]:
    """The PNG files of a run folder that its report.html does not carry as data URIs."""
    page = (folder / "report.html").read_text(encoding="utf-8")
    return [
        p.name
        for p in sorted(folder.glob("*.png"))
        if f"data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" not in page
    ]


def _section_commands(fitted, tmp_path) -> Path:
    """A copy of the fitted run after each command that adds a section, checking report.html
    after every one of them; returns the folder."""
    result, out = fitted
    run = tmp_path / "run"
    shutil.copytree(out, run)
    (tmp_path / "model.lav").write_text(MODEL)  # its header's "scale: none" read by compare too
    result.dataset.frame.to_csv(tmp_path / "data.csv", index=False)
    shutil.copytree(out, tmp_path / "other")
    commands = [
        (["reliability", str(run)], "Reliability and validity"),
        (["ppc", str(run), "--draws", "100"], "Model checking (posterior predictive)"),
        (["sensitivity", str(run)], "Prior sensitivity (power-scaling)"),
        (
            [
                "compare",
                str(tmp_path / "model.lav"),
                "--data",
                str(tmp_path / "data.csv"),
                "--run",
                str(run),
                "--out",
                str(run),
                "--boot",
                "10",
                "--process-boot",
                "20",
                "--workers",
                "1",
            ],
            "Method comparison: model",
        ),
        (
            ["compare-models", str(run), str(tmp_path / "other"), "--out", str(run)],
            "Model comparison (PSIS-LOO)",
        ),
    ]
    for command, heading in commands:
        assert main(command) == 0, command
        page = (run / "report.html").read_text(encoding="utf-8")
        assert f"<h3>{heading}</h3>" in page, command[0]
        assert not _not_embedded(run), command[0]
    return run


def test_every_section_command_rewrites_report_html_with_every_figure(fitted, tmp_path):
    run = _section_commands(fitted, tmp_path)
    assert {"ppc_items.png", "ppc_residuals.png", "comparison.png"} <= {
        p.name for p in run.glob("*.png")
    }
    page = (run / "report.html").read_text(encoding="utf-8")
    assert "[figure not embedded" not in page
    assert page.count(data_uri(run / "ppc_items.png")) == 1  # shown once, in its section
    # the sensitivity table keeps readable column names, in the report's scrolling box
    assert "<th>lower (α=0.8)</th>" in page and "ci.lower_alpha0.8" not in page
    assert page.count('<div class="table-wrap">') == page.count("<table>")
    markdown = (run / "report.md").read_text(encoding="utf-8")
    # a stage's headings nest under "## 6. Checks and comparison": every "##" is numbered
    assert re.findall(r"(?m)^## (.*)$", markdown) == [
        "1. Model and data",
        "2. Hypotheses",
        "3. Path diagram",
        "4. Effects",
        "5. Diagnostics",
        "6. Checks and comparison",
        "7. Parameter estimates",
    ]
    assert "### Model checking (posterior predictive)" in markdown
    assert "#### Where the model misses" in markdown


def test_r2_table_and_a_cfa_report_without_effects(fitted, root):
    from types import SimpleNamespace

    from bayes_sor.report.run_report import _diagram_section, _effects_section

    _, out = fitted
    page = _page(out)
    r2 = dict(page.table("Explained variance"))
    assert set(r2) == {"M", "Y"} and re.fullmatch(r"0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]", r2["M"])
    cfa = build_partable((root / "models" / "holzinger_swineford.lav").read_text())
    run = SimpleNamespace(
        partable=cfa,
        effects=pd.read_csv(out / "effects.csv").iloc[:0],
        attrs={},
        interval="95% equal-tailed interval",
        ci_prob=0.95,
    )
    effects = to_markdown(Document("T", "", [_effects_section(run, {}, [])]))
    assert "no structural paths" in effects and "moderated mediation" not in effects
    assert "|" not in effects  # no empty table
    diagram = _diagram_section(run, out / FIGURE_FILES["diagram"])
    assert diagram.title == "3. Measurement model" and "loadings" in diagram.blocks[0].caption


def test_counts_agree_with_their_nouns():
    from bayes_sor.comparison.compare_report import _flags_text

    table = pd.DataFrame(
        {
            "flag": ["sign", ""],
            "sign_disagree": [True, False],
            "zero_disagree": [False, False],
            "scale": ["std", "std"],
            "kind": ["path", "path"],
            "quantity": ["Y ~ X", "M ~ X"],
            "moderator_value": ["", ""],
        }
    )
    assert "1 row differs in sign and 0 in whether" in _flags_text(table)


def _chromium() -> str | None:
    return next(
        (
            p
            for name in ("chromium", "chromium-browser", "google-chrome")
            if (p := shutil.which(name))
        ),
        None,
    )


@pytest.mark.slow
def test_html_opens_in_headless_chromium_without_console_errors(fitted, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed")
    _, out = fitted
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (out / "report.html").resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0
    assert "</table>" in run.stdout and "data:image/png;base64," in run.stdout
    console = [
        line
        for line in run.stderr.splitlines()
        if "CONSOLE" in line or re.search(r"Uncaught|Failed to load", line)
    ]
    assert not console, console


@pytest.mark.slow
def test_report_after_every_section_stays_inside_the_window(fitted, tmp_path):
    """Every section added, rendered at 900 and 1400 px: no figure or table is painted into
    the page's right margin (what overflows its text column lands there)."""
    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed")
    run = _section_commands(fitted, tmp_path)
    for width in (900, 1400):
        shot = tmp_path / f"shot_{width}.png"
        subprocess.run(
            [
                browser,
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--hide-scrollbars",
                f"--user-data-dir={tmp_path / 'profile'}",
                f"--screenshot={shot}",
                f"--window-size={width},20000",
                (run / "report.html").resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        pixels = np.asarray(Image.open(shot).convert("L"))
        assert pixels.shape[1] == width
        margin = pixels[:, -8:]  # the body's padding (900 px) or its side margin (1400 px)
        assert margin.min() >= 245, f"something overflows the text column at {width} px"
        assert (pixels[:, : width - 8] < 128).any()  # and the page did render


def test_run_folder_attributes_record_interval_rope_and_missingness(fitted):
    _, out = fitted
    tree = xr.load_datatree(out / "posterior.nc")
    assert tree.attrs["bayes_sor_ci_prob"] == "0.95"
    assert tree.attrs["bayes_sor_rope"] == "0.05"
    assert tree.attrs["bayes_sor_missing"].startswith("{")
    # the default missing-data handling, named in the report even when nothing is missing
    assert tree.attrs["bayes_sor_missing_method"] == "model"
    assert (
        "missing answers per item: none; handling: missing-data model, case-wise (FIML)"
        in (out / "report.md").read_text()
    )


def test_small_variance_parameters_whose_interval_excludes_zero_are_listed(root):
    from types import SimpleNamespace

    from bayes_sor.report.run_report import _small_variance_blocks

    model = (root / "models" / "holzinger_swineford.lav").read_text()
    bsem = build_partable("---\ncross_loadings: normal(0,0.1)\n---\n" + model)
    estimates = bsem.parameters.assign(
        mean=0.01, sd=0.05, **{"ci.lower": -0.1, "ci.upper": 0.1, "std.all": 0.01}
    )
    x9 = (estimates.lhs == "visual") & (estimates.rhs == "x9")
    estimates.loc[x9, ["mean", "ci.lower", "ci.upper"]] = [0.22, 0.09, 0.36]
    estimates.loc[(estimates.lhs == "visual") & (estimates.rhs == "x1"), "ci.lower"] = 0.5
    run = SimpleNamespace(partable=bsem, estimates=estimates, interval="95% equal-tailed interval")
    text = to_markdown(Document("T", "", [Section("7", _small_variance_blocks(run))]))
    assert "adds 18 cross-loadings" in text and "1 of them has a 95%" in text
    listed = [line for line in text.splitlines() if line.startswith("| visual")]
    assert listed == [
        "| visual | =~ | x9 | 0.220 | 0.050 | 0.090 | 0.360 | 0.010 | normal(0,0.1) |"
    ]
    plain = SimpleNamespace(partable=build_partable(model), estimates=estimates, interval="")
    assert _small_variance_blocks(plain) == []


def test_per_group_table_and_flagged_deviations():
    """The groups section's pieces: each path per group in the groups' order, and the
    parameters approximate invariance flags named once however many groups flag them."""
    estimates = pd.DataFrame(
        {
            "lhs": ["M", "Y", "M", "Y"],
            "op": ["~"] * 4,
            "rhs": ["X", "M", "X", "M"],
            "group": ["men", "men", "women", "women"],
            "mean": [0.5, 0.4, 0.1, 0.4],
            "ci.lower": [0.3, 0.2, -0.1, 0.2],
            "ci.upper": [0.7, 0.6, 0.3, 0.6],
        }
    )
    table = per_group_table(estimates, ["women", "men"])
    assert list(table.columns) == ["parameter", "women", "men"]
    assert table.values.tolist() == [
        ["M ~ X", "0.100 [-0.100, 0.300]", "0.500 [0.300, 0.700]"],
        ["Y ~ M", "0.400 [0.200, 0.600]", "0.400 [0.200, 0.600]"],
    ]
    deviations = pd.DataFrame(
        {
            "lhs": ["x1", "x2", "x1", "x2"],
            "op": ["~1"] * 4,
            "rhs": [""] * 4,
            "group": ["men", "men", "women", "women"],
            "prior_sd": [0.1] * 4,
            "common": [3.0, 3.1, 3.0, 3.1],
            "mean": [0.2, 0.0, -0.2, 0.0],
            "ci.lower": [0.1, -0.1, -0.3, -0.1],
            "ci.upper": [0.3, 0.1, -0.1, 0.1],
            "flagged": [True, False, True, False],
        }
    )
    text = to_markdown(
        Document("t", "", [Section("8. Groups", deviation_blocks(deviations, "95% interval"))])
    )
    assert "flagged as non-invariant: x1 ~1." in text
    none = deviation_blocks(deviations.assign(flagged=False), "95% interval")[0]
    assert "none is flagged" in to_markdown(Document("t", "", [Section("s", [none])]))


def test_the_invariance_ladder_in_the_groups_section():
    """``invariance --out RUN`` leaves invariance.csv in a run's folder: the Groups section
    shows each step and its verdict against the step before."""
    ladder = pd.DataFrame(
        {
            "step": ["configural", "metric", "scalar"],
            "group.equal": ["", "loadings", "loadings, intercepts"],
            "n_free": [60, 54, 48],
            "ppp": [0.41, 0.38, 0.01],
            "brmsea": [0.05, 0.05, 0.09],
            "bcfi": [0.95, 0.95, 0.88],
            "elpd_loo": [-3700.1, -3698.2, -3720.5],
            "elpd_diff": [np.nan, 1.9, -22.3],
            "dse": [np.nan, 2.5, 6.1],
            "verdict": ["", "holds", "fails"],
            "notes": [
                np.nan,
                "BRMSEA and BCFI of ordinal items",
                "BRMSEA and BCFI of ordinal items",
            ],
        }
    )
    text = to_markdown(Document("t", "", [Section("8. Groups", ladder_blocks(ladder))]))
    assert "The invariance ladder (invariance.csv)" in text
    assert "metric (loadings equal): ELPD difference 1.9 (SE 2.5) to the step before: holds" in text
    assert "scalar (loadings, intercepts equal): ELPD difference -22.3 (SE 6.1)" in text
    assert "n_free" not in text  # the report's columns, not every column of the file
    assert text.count("Not available: BRMSEA and BCFI of ordinal items.") == 1


def test_the_run_writes_the_fits_hypotheses_and_judges_them_again_only_for_another_rope(
    fitted, tmp_path, monkeypatch
):
    """The fit judged its hypotheses already: writing the run with the same ROPE writes those
    (no second pass over the draws); another ROPE judges them again."""
    result, _ = fitted
    calls = []

    def counted(*args):
        calls.append(args[-1])
        return evaluate(*args)

    monkeypatch.setattr("bayes_sor.report.run_report.evaluate", counted)
    same = write_run(result, tmp_path / "same", report=False)
    assert calls == []
    written = pd.read_csv(same / "hypotheses.csv")
    assert list(written.hypothesis) == list(result.hypotheses.hypothesis)
    np.testing.assert_allclose(written.p_rope, result.hypotheses.p_rope)
    wider = write_run(result, tmp_path / "wider", report=False, rope=0.3)
    assert calls == [0.3]
    assert (pd.read_csv(wider / "hypotheses.csv").p_rope >= written.p_rope).all()
    assert (pd.read_csv(wider / "hypotheses.csv").p_rope > written.p_rope).any()


def test_a_multiple_group_runs_estimates_table_names_each_rows_group(fitted):
    """Later groups repeat every row of the table: without the group column they could not be
    told apart in the report."""
    from types import SimpleNamespace

    from bayes_sor.report.run_report import _estimates_section

    run = load_run(fitted[1])
    twice = pd.concat([run.estimates.assign(group="men"), run.estimates.assign(group="women")])
    grouped = SimpleNamespace(estimates=twice, interval=run.interval, partable=run.partable)
    text = to_markdown(Document("t", "", [_estimates_section(grouped)]))
    header = next(line for line in text.splitlines() if line.startswith("| "))
    assert header.split("|")[1].strip() == "group"
    assert text.count("| men ") == len(run.estimates) == text.count("| women ")
    plain = to_markdown(Document("t", "", [_estimates_section(run)]))
    assert "| group " not in plain


def test_a_saved_fit_reports_from_memory_what_its_folder_reports(fitted, tmp_path, monkeypatch):
    """``FittedModel.save`` writes the report from the posterior still in memory (reading
    posterior.nc back cost 0.7 s of Study A's fit): the same report.md, report.html and
    figures, byte for byte, as the ``report`` command makes from the folder's files alone."""
    from bayes_sor.api.fitted import FittedModel

    result, _ = fitted
    model = FittedModel.from_fit(result, "mediation", 0.05)
    with monkeypatch.context() as patched:
        patched.setattr(xr, "load_datatree", lambda *a, **k: pytest.fail("posterior.nc read"))
        saved = model.save(tmp_path / "memory" / "run")
    again = tmp_path / "files" / "run"
    shutil.copytree(saved, again)  # the copy keeps posterior.nc's time, which the report shows
    write_report(again)
    names = ["report.md", "report.html", "hypotheses.csv", *FIGURE_FILES.values()]
    for name in names:
        if (saved / name).exists() or (again / name).exists():
            assert (saved / name).read_bytes() == (again / name).read_bytes(), name
    assert (saved / "report.html").stat().st_size > 0


def test_an_unsaved_fit_reuses_the_fits_hypotheses_and_diagnostics(fitted, tmp_path, monkeypatch):
    """The model of a fit in memory shows the hypotheses and diagnostics the fit judged (the
    same as judged again from its run), and saving it (the report shows both) judges neither
    again."""
    from bayes_sor.api.fitted import FittedModel
    from bayes_sor.runs import rundir
    from bayes_sor.spec.partable import small_variance_names

    result, _ = fitted
    model = FittedModel.from_fit(result, "mediation", result.rope)
    with monkeypatch.context() as patched:
        for name in ("evaluate", "check_convergence"):
            patched.setattr(rundir, name, lambda *a, n=name, **k: pytest.fail(f"{n} again"))
        model.save(tmp_path / "run")
        hypotheses, diagnostics = model.hypotheses, model.diagnostics
    run = model.run
    again = rundir.run_from_tree(run.path, run.tree, run.rope, run.partable)
    again.__dict__["estimates"] = run.estimates
    pd.testing.assert_frame_equal(hypotheses, again.hypotheses)
    assert diagnostics == check_convergence(
        again.tree, again.estimates, small_variance_names(again.partable)
    )
    wider = FittedModel.from_fit(result, "mediation", result.rope + 0.1)
    assert "hypotheses" not in wider.run.__dict__  # another ROPE: judged again when asked
