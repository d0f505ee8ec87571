"""LISREL-style matrices from the parameter table (lavaan's ``lavMatrixRepresentation``).

A :class:`Representation` holds integer index arrays: entry ``[i, j]`` of a matrix is element
``idx[i, j]`` of the parameter vector extended by one trailing zero. The same indices assemble
the matrices from a PyTensor vector (in the PyMC model) and from NumPy posterior draws (effects,
standardisation, simulation), so the two can never disagree.

Conventions: ``lambda_`` is items x latents, ``beta[i, j]`` is the effect of latent j on latent
i, ``psi`` the latent (residual) covariances, ``theta`` the item residual covariances, ``nu`` the
item intercepts. Interaction terms ``y ~ a:b`` are listed separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bayes_sor.spec.partable import ParTable


@dataclass(frozen=True)
class Interaction:
    """A latent product term ``outcome ~ first:second`` and its parameter position."""

    outcome: int
    first: int
    second: int
    param: int


@dataclass(frozen=True)
class Representation:
    items: list[str]
    latents: list[str]
    n_par: int
    lambda_: np.ndarray
    beta: np.ndarray
    psi: np.ndarray
    theta: np.ndarray
    nu: np.ndarray
    interactions: list[Interaction]
    thresholds: dict[str, list[int]]
    #: latent means (``f ~ 1``; a multiple-group table has them, fixed to 0 or free)
    alpha: np.ndarray | None = None

    @property
    def zero(self) -> int:
        """The index of the trailing zero: entries that are structurally absent."""
        return self.n_par


def representation(pt: ParTable, group: int = 1) -> Representation:
    """Index arrays placing each parameter row in its matrix; in a multiple-group table, the
    rows of ``group`` (numbered from 1), indexing the whole parameter vector."""
    items, latents = pt.indicators, pt.latents
    item_pos = {v: i for i, v in enumerate(items)}
    lat_pos = {v: i for i, v in enumerate(latents)}
    params = pt.parameters.reset_index(drop=True)
    n = len(params)
    p, m = len(items), len(latents)
    lam = np.full((p, m), n)
    beta = np.full((m, m), n)
    psi = np.full((m, m), n)
    theta = np.full((p, p), n)
    nu = np.full(p, n)
    alpha = np.full(m, n)
    interactions: list[Interaction] = []
    thresholds: dict[str, list[int]] = {}
    in_group = (params.group == group).to_numpy() if "group" in params.columns else np.ones(n, bool)
    for k, r in enumerate(params.itertuples()):
        if not in_group[k]:
            continue
        if r.op == "~1" and r.lhs not in item_pos:
            alpha[lat_pos[r.lhs]] = k
        elif r.op == "=~":
            lam[item_pos[r.rhs], lat_pos[r.lhs]] = k
        elif r.op == "~" and ":" in r.rhs:
            a, b = r.rhs.split(":")
            interactions.append(Interaction(lat_pos[r.lhs], lat_pos[a], lat_pos[b], k))
        elif r.op == "~":
            beta[lat_pos[r.lhs], lat_pos[r.rhs]] = k
        elif r.op == "~1":
            nu[item_pos[r.lhs]] = k
        elif r.op == "|":
            thresholds.setdefault(r.lhs, []).append(k)
        elif r.op == "~~" and r.lhs in lat_pos:
            psi[lat_pos[r.lhs], lat_pos[r.rhs]] = psi[lat_pos[r.rhs], lat_pos[r.lhs]] = k
        elif r.op == "~~":
            theta[item_pos[r.lhs], item_pos[r.rhs]] = k
            theta[item_pos[r.rhs], item_pos[r.lhs]] = k
    has_means = (alpha != n).any()
    return Representation(
        items,
        latents,
        n,
        lam,
        beta,
        psi,
        theta,
        nu,
        interactions,
        thresholds,
        alpha if has_means else None,
    )


def path_depth(rep: Representation) -> int:
    """Length of the longest directed path among the latents: the d with B^(d+1) = 0."""
    step = (rep.beta != rep.zero).astype(int)
    reach = step  # reach[i, j] > 0: a path of depth + 1 steps from j to i
    for depth in range(len(rep.latents)):
        if not reach.any():
            return depth
        reach = np.minimum(reach @ step, 1)
    raise ValueError("the structural model has a cycle: (I - B) has no finite Neumann series")


def extend(par: np.ndarray) -> np.ndarray:
    """Append the structural zero to NumPy parameter draws (last axis = parameters)."""
    return np.concatenate([par, np.zeros((*par.shape[:-1], 1))], axis=-1)


@dataclass(frozen=True)
class Moments:
    """Model-implied moments for a batch of parameter draws (leading axes = draws).

    The item-level matrices (p x p per draw: 70 MB for Study A's 8000 draws) are computed on
    first use: most callers want only the latent moments or the item variances.
    """

    lambda_: np.ndarray
    beta: np.ndarray
    psi: np.ndarray
    nu: np.ndarray
    gamma: np.ndarray
    latent_cov: np.ndarray
    product_var: np.ndarray
    ext: np.ndarray  # the draws with the structural zero appended
    theta_index: np.ndarray

    @cached_property
    def theta(self) -> np.ndarray:
        return self.ext[..., self.theta_index]

    @cached_property
    def item_cov(self) -> np.ndarray:
        return self.lambda_ @ self.latent_cov @ np.swapaxes(self.lambda_, -1, -2) + self.theta

    @cached_property
    def item_var(self) -> np.ndarray:
        """The diagonal of ``item_cov`` without forming it."""
        common = np.einsum("...ij,...jk,...ik->...i", self.lambda_, self.latent_cov, self.lambda_)
        return common + self.ext[..., np.diagonal(self.theta_index)]


def implied_moments(rep: Representation, par: np.ndarray) -> Moments:
    """Latent and item covariances implied by parameter draws ``par`` (..., n_par).

    Interaction terms enter as extra zero-mean variables uncorrelated with the linear terms,
    with ``Var(a b) = Var(a) Var(b) + Cov(a, b)^2``: exact when both components are normal
    (latents not downstream of another interaction), as in every S-O-R model bundled here.
    """
    ext = extend(np.asarray(par, dtype=float))
    lam, beta, psi, nu = (ext[..., i] for i in (rep.lambda_, rep.beta, rep.psi, rep.nu))
    m = len(rep.latents)
    gamma = ext[..., [t.param for t in rep.interactions]]
    inv = np.linalg.inv(np.eye(m) - beta)
    product_var = np.zeros(gamma.shape)
    cov = inv @ psi @ np.swapaxes(inv, -1, -2)
    for _ in range(2):
        extra = np.zeros_like(psi)
        for k, t in enumerate(rep.interactions):
            product_var[..., k] = (
                cov[..., t.first, t.first] * cov[..., t.second, t.second]
                + cov[..., t.first, t.second] ** 2
            )
            extra[..., t.outcome, t.outcome] += gamma[..., k] ** 2 * product_var[..., k]
        cov = inv @ (psi + extra) @ np.swapaxes(inv, -1, -2)
    return Moments(lam, beta, psi, nu, gamma, cov, product_var, ext, rep.theta)


def implied_mean(rep: Representation, par: np.ndarray) -> np.ndarray:
    """Model-implied item means nu + Lambda (I - B)^-1 alpha for draws ``par`` (..., n_par);
    nu where the table has no latent means (one group)."""
    ext = extend(np.asarray(par, dtype=float))
    nu = ext[..., rep.nu]
    if rep.alpha is None:
        return nu
    total = np.linalg.inv(np.eye(len(rep.latents)) - ext[..., rep.beta])
    means = (total @ ext[..., rep.alpha][..., None])[..., 0]
    return nu + (ext[..., rep.lambda_] @ means[..., None])[..., 0]
