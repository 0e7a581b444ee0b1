"""Fréchet distance between Gaussian fits of network features (the core of FID and FVD)."""

from __future__ import annotations

import numpy as np


class RunningGaussian:
    """Mean and covariance of D-dimensional feature rows added batch by batch, so a large set
    is never held at once (the pairwise update of Chan, Golub and LeVeque)."""

    def __init__(self, dim: int) -> None:
        self.count = 0
        self.mean = np.zeros(dim)
        self.scatter = np.zeros((dim, dim))  # sum of outer products of deviations from the mean

    def add(self, features: np.ndarray) -> None:
        """Add the rows of an N x D batch."""
        data = np.asarray(features, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.mean.size:
            raise ValueError(f"features must be N x {self.mean.size}, got shape {data.shape}")
        if not data.shape[0]:
            return
        mean = data.mean(axis=0)
        centred = data - mean
        total = self.count + data.shape[0]
        delta = mean - self.mean
        self.scatter += centred.T @ centred + np.outer(delta, delta) * (
            self.count * data.shape[0] / total
        )
        self.mean = self.mean + delta * (data.shape[0] / total)
        self.count = total

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean (D) and unbiased covariance (D x D); ValueError unless N >= 2 rows were added."""
        if self.count < 2:
            raise ValueError(
                f"a Gaussian fit needs N >= 2 feature vectors, got {self.count}: a Frechet "
                "distance (FID, FVD) needs at least 2 frames or videos per set"
            )
        return self.mean.copy(), self.scatter / (self.count - 1)


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D) and unbiased covariance (D x D) of N x D features, N >= 2."""
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"features must be N x D, got shape {data.shape}")
    running = RunningGaussian(data.shape[1])
    running.add(data)
    return running.stats()


def _psd_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and vectors of a symmetrised PSD matrix, round-off negatives set to 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return np.clip(values, 0.0, None), vectors


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

    ||mu1 - mu2||^2 + Tr(cov1 + cov2 - 2 (S cov2 S)^(1/2)) with S = cov1^(1/2). Both square
    roots are of symmetric matrices, taken by eigen-decomposition, so the result stays real
    and finite for singular covariances (fewer samples than dimensions). It is clipped at 0.
    """
    m1, m2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    c1, c2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    dim = m1.size
    if m1.shape != (dim,) or m2.shape != (dim,) or c1.shape != (dim, dim) or c2.shape != c1.shape:
        raise ValueError(
            f"inconsistent shapes: mu {m1.shape}, {m2.shape}; cov {c1.shape}, {c2.shape}"
        )
    values1, vectors1 = _psd_eigh(c1)
    root1 = (vectors1 * np.sqrt(values1)) @ vectors1.T
    cross = np.sqrt(_psd_eigh(root1 @ c2 @ root1)[0]).sum()
    distance = float(np.sum((m1 - m2) ** 2) + np.trace(c1) + np.trace(c2) - 2.0 * cross)
    return max(distance, 0.0)
