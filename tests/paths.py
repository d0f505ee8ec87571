"""Where the tests find the repository's files: one definition for every test module."""

from pathlib import Path

#: The checkout: models/, data/, reports/, README.md, pyproject.toml.
ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
