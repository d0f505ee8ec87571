"""The example notebooks run end to end on the current code (slow: a Study A fit, its checks
and a comparison), so they never go stale."""

from __future__ import annotations

import os

import pytest
from paths import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.ipynb"))


def test_the_readme_links_every_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert EXAMPLES
    for notebook in EXAMPLES:
        assert f"(examples/{notebook.name})" in readme, notebook.name


@pytest.mark.slow
@pytest.mark.parametrize("notebook", EXAMPLES, ids=lambda p: p.name)
def test_an_example_notebook_runs_without_an_error(notebook, tmp_path, monkeypatch):
    # the notebook tools are test dependencies only (pip install -e ".[test]")
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    # the kernel imports this checkout's bayes_sor, as the tests do
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    monkeypatch.setenv("PYTHONPATH", path)
    client = nbclient.NotebookClient(
        nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    # run from a folder of its own: the notebook finds the repository from examples/ or the
    # root, so a copy of it there stands for a user's examples/ folder
    (tmp_path / "models").symlink_to(ROOT / "models")
    (tmp_path / "data").symlink_to(ROOT / "data")
    client.execute()
    errors = [
        output
        for cell in nb.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    # figures show as images, also those made before anything loaded pyplot
    plots = [c for c in nb.cells if c.cell_type == "code" and ".plot_" in c.source]
    assert plots and all("image/png" in c.outputs[-1]["data"] for c in plots)
    summary = next(c for c in nb.cells if c.cell_type == "code" and "bs.fit(" in c.source)
    html = summary.outputs[-1]["data"]["text/html"]
    assert "convergence: <b" in html and "H10" in html
