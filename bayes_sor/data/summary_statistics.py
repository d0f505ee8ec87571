"""Summary-statistics input: a published covariance (or correlation + SDs) matrix and N.

The marginal likelihood depends on the data only through N, the item means and the sample
covariance. Without means the intercepts are not identified and the mean structure is dropped;
the covariance part is then the Wishart likelihood of the unbiased sample covariance S with N - 1
degrees of freedom, -(N - 1)/2 [log|Sigma| + tr(Sigma^-1 S)], which is exactly what the raw-data
likelihood becomes once the intercepts are integrated out under a flat prior. So a fit from S and
N reproduces the raw-data posterior of every other parameter.

Every problem is one :class:`~bayes_sor.errors.DataError` that says what is wrong and where
(the file, the row and column names).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from bayes_sor.data.csv_reader import read_csv_bytes
from bayes_sor.errors import DataError

#: Relative tolerance for symmetry (published matrices are rounded, typically to 3 decimals).
SYMMETRY_RTOL = 1e-6


@dataclass
class SummaryData:
    """The sample covariance matrix of the model's items and the sample size."""

    cov: pd.DataFrame
    """Unbiased (N - 1) sample covariance (a correlation matrix when ``standardized``)."""
    nobs: int
    standardized: bool
    source: str
    sha256: str
    items: list[str] = field(default_factory=list)
    n_dropped: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    #: a multiple-group input: each group's label and its own matrix and N (``cov`` and
    #: ``nobs`` are then the groups' pooled covariance and their total N)
    group_levels: list[str] = field(default_factory=list)
    group_data: list[SummaryData] = field(default_factory=list)

    def statistics(self) -> dict[str, np.ndarray]:
        """What the marginal likelihood needs: N - 1 and the Cholesky factor of S (no means)."""
        s = self.cov.to_numpy(dtype=float)
        return {"n": np.array(self.nobs - 1, dtype=float), "cov_chol": np.linalg.cholesky(s)}


def _read(source: str | Path | pd.DataFrame, what: str) -> tuple[pd.DataFrame, str, bytes]:
    """The matrix as read, where it came from (for messages), and the bytes to hash.

    Files go through the survey-data reader, so an empty, binary or oddly encoded or
    delimited file gets the same messages as a data file.
    """
    if isinstance(source, pd.DataFrame):
        return source.copy(), f"<{what} DataFrame>", source.to_csv().encode()
    frame, raw = read_csv_bytes(source, f"{what} file")
    return frame, str(source), raw


def _square(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Row labels (a first column of names, if present) and a square numeric matrix."""
    first = frame.columns[0]
    names = {str(c).strip() for c in frame.columns[1:]}
    labelled = (
        not is_numeric_dtype(frame[first]) and set(frame[first].astype(str).str.strip()) <= names
    )
    if labelled or str(first).startswith("Unnamed"):
        frame = frame.set_index(first)
        frame.index = [str(i).strip() for i in frame.index]
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[0] != frame.shape[1]:
        raise DataError(
            f"{where}: the matrix has {frame.shape[0]} rows and {frame.shape[1]} "
            "columns; give a square matrix with the item names as header"
        )
    if not isinstance(frame.index[0], str):
        frame.index = list(frame.columns)
    if list(frame.index) != list(frame.columns):
        raise DataError(
            f"{where}: the row names {list(frame.index)[:6]} differ from the column "
            f"names {list(frame.columns)[:6]}; use the same order for both"
        )
    values = frame.apply(pd.to_numeric, errors="coerce")
    bad = values.isna() & frame.notna()
    if bad.any().any():
        r, c = np.argwhere(bad.to_numpy())[0]
        raise DataError(
            f"{where}: the entry in row {frame.index[r]!r}, column "
            f"{frame.columns[c]!r} ({frame.iat[r, c]!r}) is not a number"
        )
    return _fill_triangle(values, where)


def _fill_triangle(values: pd.DataFrame, where: str) -> pd.DataFrame:
    """A lower (or upper) triangle with the other half empty is completed by symmetry."""
    m = values.to_numpy(dtype=float, copy=True)
    upper, lower = np.triu_indices_from(m, 1), np.tril_indices_from(m, -1)
    if np.isnan(m[upper]).all():
        m[upper] = m.T[upper]
    elif np.isnan(m[lower]).all():
        m[lower] = m.T[lower]
    if np.isnan(m).any():
        r, c = np.argwhere(np.isnan(m))[0]
        raise DataError(
            f"{where}: the entry in row {values.index[r]!r}, column "
            f"{values.columns[c]!r} is empty; give the full matrix or one complete "
            "triangle"
        )
    return pd.DataFrame(m, index=values.index, columns=values.columns)


def check_symmetric(m: pd.DataFrame, where: str) -> None:
    a = m.to_numpy()
    gap = np.abs(a - a.T)
    tol = SYMMETRY_RTOL * max(np.abs(a).max(), 1e-300)
    if (gap > tol).any():
        pairs = [
            f"[{m.index[r]!r}, {m.columns[c]!r}] = {a[r, c]:g} but "
            f"[{m.index[c]!r}, {m.columns[r]!r}] = {a[c, r]:g}"
            for r, c in np.argwhere(np.triu(gap > tol))[:3]
        ]
        raise DataError(
            f"{where}: the matrix is not symmetric: {'; '.join(pairs)}; a "
            "covariance matrix must equal its transpose"
        )


def check_positive_definite(m: pd.DataFrame, where: str) -> None:
    """Positive diagonal, then the smallest eigenvalue and the items that make it vanish."""
    diag = np.diag(m.to_numpy())
    if (diag <= 0).any():
        names = [n for n, d in zip(m.index, diag, strict=True) if d <= 0]
        raise DataError(f"{where}: the variance of {names} is not positive")
    eigval, eigvec = np.linalg.eigh(m.to_numpy())
    if eigval[0] <= 1e-10 * eigval[-1]:
        involved = [m.index[k] for k in np.argsort(-np.abs(eigvec[:, 0]))[:4]]
        raise DataError(
            f"{where}: the matrix of the model's items is not positive definite (smallest "
            f"eigenvalue {eigval[0]:.3g}, mostly in items {involved}); check for a typo, a "
            "pairwise-deleted matrix, or an item that is a sum of others"
        )


def _check_correlation(m: pd.DataFrame, where: str) -> None:
    a = m.to_numpy()
    if not np.allclose(np.diag(a), 1.0, atol=1e-6):
        bad = [n for n, d in zip(m.index, np.diag(a), strict=True) if abs(d - 1) > 1e-6]
        raise DataError(
            f"{where}: a correlation matrix has 1 on the diagonal, but not for "
            f"{bad}; is this a covariance matrix (use --cov)?"
        )
    if (np.abs(a) > 1 + 1e-9).any():
        r, c = np.argwhere(np.abs(a) > 1 + 1e-9)[0]
        raise DataError(
            f"{where}: the correlation of {m.index[r]!r} and {m.columns[c]!r} is "
            f"{a[r, c]:g}, outside [-1, 1]"
        )


def _read_sd(source: str | Path | pd.DataFrame, names: list[str]) -> tuple[pd.Series, bytes]:
    """SDs as one row under an item-name header, or two columns (item, sd)."""
    frame, where, raw = _read(source, "SD")
    if frame.shape[1] == 2 and not is_numeric_dtype(frame.iloc[:, 0]):
        sd = pd.Series(frame.iloc[:, 1].to_numpy(), index=frame.iloc[:, 0].astype(str).str.strip())
    elif frame.shape[0] == 1:
        sd = frame.iloc[0]
        sd.index = [str(c).strip() for c in sd.index]
    else:
        raise DataError(
            f"{where}: give the SDs as one row under a header of item names, or as "
            "two columns (item, sd)"
        )
    sd = pd.to_numeric(sd, errors="coerce")
    missing = [n for n in names if n not in sd.index]
    if missing:
        raise DataError(f"{where}: no SD for the item(s) {missing}")
    bad = [n for n in names if not sd[n] > 0]
    if bad:
        raise DataError(f"{where}: the SD of {bad} is not a positive number")
    return sd[names], raw


def load_summary(
    items: list[str],
    *,
    cov: str | Path | pd.DataFrame | None = None,
    cor: str | Path | pd.DataFrame | None = None,
    sd: str | Path | pd.DataFrame | None = None,
    nobs: int | None = None,
) -> SummaryData:
    """Read and check a covariance matrix (or correlations, with SDs or without) and N."""
    if (cov is None) == (cor is None):
        raise DataError(
            "give either a covariance matrix (--cov) or a correlation matrix (--cor), not both"
        )
    if cov is not None and sd is not None:
        raise DataError("--sd goes with --cor; a covariance matrix already holds the variances")
    frame, where, raw = _read(
        cov if cov is not None else cor, "covariance" if cov is not None else "correlation"
    )
    matrix = _square(frame, where)
    check_symmetric(matrix, where)
    missing = [i for i in items if i not in matrix.columns]
    if missing:
        raise DataError(
            f"{where} has no row/column for the model's item(s) {missing}; its "
            f"names are {list(matrix.columns)[:20]}"
        )
    matrix = matrix.loc[items, items]
    if cor is not None:
        _check_correlation(matrix, where)
    check_positive_definite(matrix, where)
    _check_nobs(nobs, len(items))
    standardized = cor is not None and sd is None
    if cor is not None and sd is not None:
        sds, sd_raw = _read_sd(sd, items)
        matrix = matrix * np.outer(sds, sds)
        raw += sd_raw
    if standardized:
        warnings.warn(
            "a correlation matrix without SDs: the analysis is standardised (items "
            "with unit variance), so loadings and variances are in correlation "
            "metric, and the Wishart likelihood treats the correlations as "
            "covariances (posterior spread slightly off); give --sd for the "
            "unstandardised analysis",
            stacklevel=2,
        )
    return SummaryData(
        cov=matrix,
        nobs=int(nobs),
        standardized=standardized,
        source=where,
        sha256=hashlib.sha256(raw).hexdigest(),
        items=list(items),
    )


def load_group_summary(
    items: list[str],
    group: str,
    *,
    cov: str | Path | pd.DataFrame | None = None,
    cor: str | Path | pd.DataFrame | None = None,
    sd: str | Path | pd.DataFrame | None = None,
    nobs: list[int] | int | None = None,
) -> SummaryData:
    """One matrix per group, stacked in one file with a ``group`` column (lavaan's
    ``sample.cov`` list): the rows of each group's matrix carry its label, groups in order of
    first appearance; ``nobs``: each group's N in that order (``--nobs 156,145``). ``sd``
    (with ``cor``) holds one row of SDs per group, with the same ``group`` column."""
    if (cov is None) == (cor is None):
        raise DataError(
            "give either a covariance matrix (--cov) or a correlation matrix (--cor), not both"
        )
    frame, where, raw = _read(
        cov if cov is not None else cor, "covariance" if cov is not None else "correlation"
    )
    levels = _group_levels(frame, group, where)
    counts = [nobs] if isinstance(nobs, int) else list(nobs or [])
    if len(counts) != len(levels):
        raise DataError(
            f"{where} holds {len(levels)} groups ({', '.join(levels)}) but --nobs gives "
            f"{len(counts)} sample size(s); give one per group in that order, e.g. --nobs "
            + ",".join(["150"] * len(levels))
        )
    sds = None
    if sd is not None:
        sd_frame, _, sd_raw = _read(sd, "SD")
        raw += sd_raw
        sds = (
            {
                level: rows.drop(columns=group)
                for level, rows in sd_frame.groupby(
                    sd_frame[group].astype(str).str.strip(), sort=False
                )
            }
            if group in sd_frame.columns
            else None
        )
        if sds is None or set(sds) != set(levels):
            raise DataError(
                f"SD file: give one row of SDs per group with a {group!r} column naming the "
                f"groups {levels}"
            )
    labels = frame[group].astype(str).str.strip()
    parts, messages = [], {}
    for level, n in zip(levels, counts, strict=True):
        matrix = frame[labels == level].drop(columns=group).reset_index(drop=True)
        kind = {"cov": matrix} if cov is not None else {"cor": matrix}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parts.append(
                load_summary(items, **kind, sd=None if sds is None else sds[level], nobs=n)
            )
        messages.update({str(w.message): w.category for w in caught})
    for message, category in messages.items():  # the standardisation warning once, not per group
        warnings.warn(message, category, stacklevel=2)
    pooled = sum((d.nobs - 1) * d.cov for d in parts) / sum(d.nobs - 1 for d in parts)
    return SummaryData(
        cov=pooled,
        nobs=sum(d.nobs for d in parts),
        standardized=parts[0].standardized,
        source=where,
        sha256=hashlib.sha256(raw).hexdigest(),
        items=list(items),
        group_levels=levels,
        group_data=parts,
    )


def _group_levels(frame: pd.DataFrame, group: str, where: str) -> list[str]:
    """The groups of a stacked matrix file, in order of first appearance; each needs two."""
    if group not in frame.columns:
        raise DataError(
            f"{where} has no {group!r} column: for a multiple-group model stack one matrix "
            f"per group with a {group!r} column naming each row's group"
        )
    levels = list(dict.fromkeys(frame[group].astype(str).str.strip()))
    if len(levels) < 2:
        raise DataError(
            f"{where}: the {group!r} column has only one group ({levels[0]!r}); a "
            "multiple-group model needs at least two"
        )
    return levels


def _check_nobs(nobs: int | None, p: int) -> None:
    if nobs is None:
        raise DataError("a covariance or correlation matrix needs the sample size: give --nobs")
    if isinstance(nobs, bool) or not float(nobs).is_integer():
        raise DataError(f"--nobs must be a whole number of respondents, got {nobs!r}")
    if nobs <= p:
        raise DataError(
            f"--nobs {nobs} is not larger than the number of items in the model ({p}): the "
            "sample covariance of p items needs at least p + 1 respondents to be positive "
            "definite; give the sample size the matrix was computed from"
        )
