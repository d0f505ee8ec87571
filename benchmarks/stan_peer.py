"""Stan (pystan 3, blavaan's engine) on the same posteriors as bayes_sor's default models, for
the Stan rows of ``benchmarks/run.py``; runs in its own virtual environment, never in bayes_sor's:

    python3.12 -m venv /work/stanvenv && /work/stanvenv/bin/pip install pystan "arviz<1" pandas
    /work/stanvenv/bin/python benchmarks/stan_peer.py hs data/holzinger_swineford.csv OUT.csv
    /work/stanvenv/bin/python benchmarks/stan_peer.py pd data/political_democracy.csv OUT.csv
    ... OUT.csv CHAINS DRAWS TUNE     # default 4 1000 1000

``hs``: models/holzinger_swineford.lav under std.lv (first loadings halfnormal(10), the others
normal(0, 10), factor correlations LKJ(1)); ``pd``: models/political_democracy.lav under its
marker scaling (loadings and regressions normal(0, 10), residual correlations uniform on
(-1, 1), i.e. beta(1, 1) on (rho + 1) / 2, latent (residual) SDs gamma(1, 0.5)). Both: residual
SDs gamma(1, 0.5), intercepts normal(0, 32), the likelihood from the sufficient statistics (as
blavaan does), starting values from the items' means and SDs, 4 chains x 1000 after 1000.
Writes one row per free parameter of bayes_sor's table (lhs, op, rhs, mean, sd, ess_bulk, r_hat), on
bayes_sor's scale (variances, covariances), so ``run.py`` compares both posteriors; prints the
seconds spent building (the cached model) and sampling. The first run of a model compiles it
(~1.5 minutes); httpstan caches it for later runs.
"""

from __future__ import annotations

import sys
import time

import arviz as az
import numpy as np
import pandas as pd
import stan

#: the log-likelihood of the answers from their mean and the Cholesky factor of their (biased)
#: covariance, given Sigma's Cholesky factor L: the last statement of both models
LIKELIHOOD = """  target += -0.5 * N * (2 * sum(log(diagonal(L)))
                        + sum(square(mdivide_left_tri_low(L, S_chol)))
                        + dot_self(mdivide_left_tri_low(L, ybar - nu)));
"""

HS = (
    r"""
data { int<lower=1> N; int<lower=1> P; vector[P] ybar; matrix[P, P] S_chol; }
transformed data { array[P] int fac = {1, 1, 1, 2, 2, 2, 3, 3, 3}; }
parameters {
  vector<lower=0>[3] lambda_first;
  vector[6] lambda_rest;
  cholesky_factor_corr[3] Lcorr;
  vector<lower=0>[P] theta_sd;
  vector[P] nu;
}
transformed parameters {
  vector[P] lambda;
  {
    int k = 1;
    for (j in 1:P) {
      if (j == 1 || j == 4 || j == 7) lambda[j] = lambda_first[fac[j]];
      else { lambda[j] = lambda_rest[k]; k += 1; }
    }
  }
}
model {
  matrix[P, 3] Lam = rep_matrix(0, P, 3);
  for (j in 1:P) Lam[j, fac[j]] = lambda[j];
  matrix[P, P] Sigma = add_diag(Lam * multiply_lower_tri_self_transpose(Lcorr) * Lam',
                                square(theta_sd));
  matrix[P, P] L = cholesky_decompose(Sigma);
  lambda_first ~ normal(0, 10);
  lambda_rest ~ normal(0, 10);
  Lcorr ~ lkj_corr_cholesky(1);
  theta_sd ~ gamma(1, 0.5);
  nu ~ normal(0, 32);
"""
    + LIKELIHOOD
    + r"""}
generated quantities {
  vector[P] theta = square(theta_sd);
  matrix[3, 3] R = multiply_lower_tri_self_transpose(Lcorr);
  vector[3] cor = [R[1, 2], R[1, 3], R[2, 3]]';
}
"""
)

# items x1 x2 x3 y1 .. y8; latents ind60, dem60, dem65 (each scaled by its first item)
PD = (
    r"""
data { int<lower=1> N; int<lower=1> P; vector[P] ybar; matrix[P, P] S_chol; }
transformed data {
  array[P] int fac = {1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
  array[P] int free_k = {0, 1, 2, 0, 3, 4, 5, 0, 6, 7, 8};
  // residual correlations y1~~y5, y2~~y4, y2~~y6, y3~~y7, y4~~y8, y6~~y8 (item positions)
  array[6] int ra = {4, 5, 5, 6, 7, 9};
  array[6] int rb = {8, 7, 9, 10, 11, 11};
}
parameters {
  vector[8] lambda_free;
  vector[3] reg;  // dem60 ~ a*ind60, dem65 ~ c*ind60, dem65 ~ b*dem60
  vector<lower=-1, upper=1>[6] rho;
  vector<lower=0>[P] theta_sd;
  vector<lower=0>[3] psi_sd;
  vector[P] nu;
}
transformed parameters {
  vector[6] theta_cov;
  for (k in 1:6) theta_cov[k] = rho[k] * theta_sd[ra[k]] * theta_sd[rb[k]];
}
model {
  matrix[P, 3] Lam = rep_matrix(0, P, 3);
  for (j in 1:P) Lam[j, fac[j]] = free_k[j] == 0 ? 1 : lambda_free[free_k[j]];
  matrix[3, 3] T = identity_matrix(3);  // (I - B)^-1 of the recursive model
  T[2, 1] = reg[1];
  T[3, 2] = reg[3];
  T[3, 1] = reg[2] + reg[3] * reg[1];
  matrix[P, P] Theta = diag_matrix(square(theta_sd));
  for (k in 1:6) {
    Theta[ra[k], rb[k]] = theta_cov[k];
    Theta[rb[k], ra[k]] = theta_cov[k];
  }
  matrix[P, 3] LT = Lam * T;
  matrix[P, P] Sigma = LT * diag_matrix(square(psi_sd)) * LT' + Theta;
  matrix[P, P] L = cholesky_decompose(Sigma);
  lambda_free ~ normal(0, 10);
  reg ~ normal(0, 10);
  theta_sd ~ gamma(1, 0.5);
  psi_sd ~ gamma(1, 0.5);
  nu ~ normal(0, 32);
"""
    + LIKELIHOOD
    + r"""}
generated quantities {
  vector[P] theta = square(theta_sd);
  vector[3] psi = square(psi_sd);
}
"""
)


def _hs(y: np.ndarray) -> tuple[str, dict, list[tuple[str, str, str, str, int]]]:
    """The HS model, its starting values, and bayes_sor's rows -> (Stan variable, index)."""
    init = {
        "lambda_first": [1.0] * 3,
        "lambda_rest": [1.0] * 6,
        "Lcorr": np.eye(3).tolist(),
        "theta_sd": (0.7 * y.std(0)).tolist(),
        "nu": y.mean(0).tolist(),
    }
    items = [f"x{i}" for i in range(1, 10)]
    factors = ["visual", "textual", "speed"]
    rows = [(factors[j // 3], "=~", x, "lambda", j) for j, x in enumerate(items)]
    rows += [(x, "~~", x, "theta", j) for j, x in enumerate(items)]
    rows += [(x, "~1", "", "nu", j) for j, x in enumerate(items)]
    pairs = [("visual", "textual"), ("visual", "speed"), ("textual", "speed")]
    rows += [(a, "~~", b, "cor", k) for k, (a, b) in enumerate(pairs)]
    return HS, init, rows


def _pd(y: np.ndarray) -> tuple[str, dict, list[tuple[str, str, str, str, int]]]:
    """The PoliticalDemocracy model, its starting values and bayes_sor's rows."""
    var = y.var(0)
    init = {
        "lambda_free": [1.0] * 8,
        "reg": [0.0] * 3,
        "rho": [0.0] * 6,
        "theta_sd": np.sqrt(0.5 * var).tolist(),
        "psi_sd": np.sqrt(0.5 * var[[0, 3, 7]]).tolist(),
        "nu": y.mean(0).tolist(),
    }
    items = PD_ITEMS
    latents = ["ind60", "dem60", "dem65"]
    fac = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    free = [0, 1, 2, 0, 3, 4, 5, 0, 6, 7, 8]
    rows = [
        (latents[fac[j]], "=~", x, "lambda_free", free[j] - 1)
        for j, x in enumerate(items)
        if free[j]
    ]
    rows += [
        ("dem60", "~", "ind60", "reg", 0),
        ("dem65", "~", "ind60", "reg", 1),
        ("dem65", "~", "dem60", "reg", 2),
    ]
    pairs = [("y1", "y5"), ("y2", "y4"), ("y2", "y6"), ("y3", "y7"), ("y4", "y8"), ("y6", "y8")]
    rows += [(a, "~~", b, "theta_cov", k) for k, (a, b) in enumerate(pairs)]
    rows += [(x, "~~", x, "theta", j) for j, x in enumerate(items)]
    rows += [(x, "~1", "", "nu", j) for j, x in enumerate(items)]
    rows += [(f, "~~", f, "psi", k) for k, f in enumerate(latents)]
    return PD, init, rows


HS_ITEMS = [f"x{i}" for i in range(1, 10)]
PD_ITEMS = ["x1", "x2", "x3"] + [f"y{i}" for i in range(1, 9)]
MODELS = {"hs": (_hs, HS_ITEMS), "pd": (_pd, PD_ITEMS)}


def main(
    which: str, data: str, out: str, chains: int = 4, draws: int = 1000, tune: int = 1000
) -> None:
    """Fit ``which`` to the CSV ``data``; write the free parameters' summary to ``out``."""
    make, items = MODELS[which]
    y = pd.read_csv(data)[items].to_numpy(float)
    code, init, rows = make(y)
    cov = np.cov(y, rowvar=False, bias=True)
    stats = {"N": y.shape[0], "P": y.shape[1], "ybar": y.mean(0), "S_chol": np.linalg.cholesky(cov)}
    start = time.perf_counter()
    post = stan.build(code, data=stats, random_seed=1)
    built = time.perf_counter()
    fit = post.sample(num_chains=chains, num_samples=draws, num_warmup=tune, init=[init] * chains)
    sampled = time.perf_counter()
    idata = az.from_pystan(posterior=fit, posterior_model=post)
    names = sorted({r[3] for r in rows})
    ess = az.ess(idata, var_names=names, method="bulk")
    rhat = az.rhat(idata, var_names=names)
    post_ = idata.posterior
    table = pd.DataFrame(
        [
            {
                "lhs": lhs,
                "op": op,
                "rhs": rhs,
                "mean": float(post_[v].values[..., k].mean()),
                "sd": float(post_[v].values[..., k].std()),
                "ess_bulk": float(ess[v].values[k]),
                "r_hat": float(rhat[v].values[k]),
            }
            for lhs, op, rhs, v, k in rows
        ]
    )
    table.to_csv(out, index=False)
    print(f"build {built - start:.2f} s, sampling {sampled - built:.2f} s")


if __name__ == "__main__":
    main(*sys.argv[1:4], *(int(a) for a in sys.argv[4:7]))
