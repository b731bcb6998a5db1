"""The statistics behind FID, KID and the Inception Score, in float64 NumPy.

Each follows the implementation whose numbers users compare against:
  * FID: pytorch-fid's `calculate_frechet_distance` (scipy `sqrtm` of sigma1·sigma2; a
    non-finite root retried with 1e-6 added to both diagonals; a complex root accepted
    when its diagonal's imaginary part is below 1e-3, and its real part used);
  * KID: the unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³
    over random subsets (Bińkowski et al. 2018; subset sampling as clean-fid's
    `kernel_distance`), reported as the mean and standard deviation over subsets;
  * Inception Score: exp(E_x KL(p(y|x) || p(y))) over 10 splits, from the softmax of
    the network's 1008 logits (Salimans et al. 2016), mean and standard deviation.
Statistics (mu, sigma) are saved as `.npz` files with those two keys, the format
pytorch-fid reads and writes.
"""

import logging
from pathlib import Path

import numpy as np
from scipy import linalg

from jaxgan.errors import JaxganError


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of [N, D] features, in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise JaxganError(f'need at least 2 feature vectors for statistics, got shape {f.shape}')
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  sigma1 = np.atleast_2d(sigma1).astype(np.float64)
  sigma2 = np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise JaxganError(f'statistics differ in dimension: {mu1.shape} vs {mu2.shape}')
  diff = mu1 - mu2
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    logging.warning('FID: singular product of covariances; adding %g to the diagonals', eps)
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise JaxganError(f'FID: the covariance square root has an imaginary component of '
                        f'{np.max(np.abs(covmean.imag)):.3g}')
    covmean = covmean.real
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_inception_distance(features1, features2, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0):
  """(mean, std) over subsets of the unbiased MMD² with k(x,y) = (x·y/d + 1)^3."""
  f1 = np.asarray(features1, np.float64)
  f2 = np.asarray(features2, np.float64)
  d = f1.shape[1]
  m = min(f1.shape[0], f2.shape[0], subset_size)
  if m < 2:
    raise JaxganError(f'KID needs at least 2 images per set, got {f1.shape[0]} and {f2.shape[0]}')
  rng = np.random.default_rng(seed)
  values = []
  for _ in range(num_subsets):
    x = f2[rng.choice(f2.shape[0], m, replace=False)]
    y = f1[rng.choice(f1.shape[0], m, replace=False)]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    values.append(within - 2 * kxy.mean())
  values = np.array(values)
  return float(values.mean()), float(values.std())


def inception_score(logits, splits: int = 10):
  """(mean, std) over `splits` of exp(mean KL(p(y|x) || p(y)))."""
  z = np.asarray(logits, np.float64)
  if z.ndim != 2 or z.shape[0] < splits:
    raise JaxganError(f'Inception Score needs at least {splits} images (one per split), '
                      f'got {z.shape[0] if z.ndim == 2 else z.shape}')
  z = z - z.max(axis=1, keepdims=True)
  p = np.exp(z)
  p /= p.sum(axis=1, keepdims=True)
  scores = []
  n = p.shape[0] // splits
  for k in range(splits):
    part = p[k * n:(k + 1) * n]
    py = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(part + 1e-30) - np.log(py + 1e-30)), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def save_statistics(path, mu, sigma) -> None:
  np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))


def load_statistics(path):
  path = Path(path)
  try:
    with np.load(path) as f:
      return np.asarray(f['mu'], np.float64), np.asarray(f['sigma'], np.float64)
  except FileNotFoundError:
    raise JaxganError(f'statistics file not found: {path}') from None
  except (KeyError, ValueError, OSError) as e:
    raise JaxganError(f'{path} is not a statistics .npz with mu and sigma ({e})') from None
