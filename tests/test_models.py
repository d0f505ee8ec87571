"""The bundled model files: what their comments name exists, and their SBC-ready priors
(``models/<name>.sbc_priors.yaml``) replace every vague default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from paths import MODELS, ROOT

from bayes_sor.sbc.run import make_config, vague_default_priors
from bayes_sor.spec.partable import build_partable, read_prior_file

PRIOR_FILES = sorted(MODELS.glob("*.sbc_priors.yaml"))
#: a file name in a comment: a word with a known extension
NAMED_FILE = re.compile(r"[\w./-]+\.(?:md|csv|yaml|lav|py|txt)\b")
#: the project's reference folder lives beside the repository (CI has it there)
OUTSIDE = "../shared/reference/"


@pytest.mark.parametrize(
    "path", sorted([*MODELS.glob("*.lav"), *MODELS.glob("*.yaml")]), ids=lambda p: p.name
)
def test_files_named_in_model_comments_exist(path: Path):
    comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("#")]
    named = {m.group() for line in comments for m in NAMED_FILE.finditer(line)}
    missing = [
        name
        for name in sorted(named)
        if not name.startswith(OUTSIDE)
        and not (ROOT / name).exists()
        and not (path.parent / name).exists()
    ]
    assert not missing, f"{path.name} names files the repository does not hold: {missing}"


def test_the_bundled_survey_models_have_sbc_ready_priors():
    assert {p.name.removesuffix(".sbc_priors.yaml") for p in PRIOR_FILES} >= {
        "holzinger_swineford",
        "impulse_buying",
        "purchase_intention",
    }


@pytest.mark.parametrize("path", PRIOR_FILES, ids=lambda p: p.name)
def test_sbc_ready_priors_replace_every_vague_default(path: Path):
    model = MODELS / path.name.replace(".sbc_priors.yaml", ".lav")
    priors = read_prior_file(path)
    assert vague_default_priors(make_config(model, 300)), "the model alone uses the defaults"
    assert vague_default_priors(make_config(model, 300, priors=priors)) == {}
    # the file's command line names the file and its model
    assert f"sbc models/{model.name} --priors models/{path.name}" in path.read_text()


@pytest.mark.parametrize("path", PRIOR_FILES, ids=lambda p: p.name)
def test_prior_file_line_pasted_into_the_header_gives_the_same_table(path: Path):
    model = (MODELS / path.name.replace(".sbc_priors.yaml", ".lav")).read_text()
    lines = "\n".join(x for x in path.read_text().splitlines() if not x.startswith("#"))
    _, header, body = model.split("---\n", 2) if model.startswith("---\n") else ("", "", model)
    pasted = build_partable(f"---\n{header}{lines}\n---\n{body}")
    passed = build_partable(model, priors=read_prior_file(path))
    # the header's extra lines shift the statements' line numbers, nothing else
    assert pasted.table.drop(columns="line").equals(passed.table.drop(columns="line"))
    assert pasted.options["priors"] == passed.options["priors"]
