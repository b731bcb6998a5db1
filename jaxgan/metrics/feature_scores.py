"""The statistics behind FID, KID and the Inception Score, in float64 NumPy.

Each follows the implementation whose numbers users compare against:
  * FID: pytorch-fid's `calculate_frechet_distance`, d² = |mu1 - mu2|² + tr(sigma1) +
    tr(sigma2) - 2 tr(sqrt(sigma1·sigma2)). pytorch-fid takes the last trace from scipy's
    `sqrtm` of the (non-symmetric) product; here it is the sum of the square roots of
    the eigenvalues of the symmetric r·sigma2·r, r = sqrt(sigma1), which has the same
    eigenvalues as sigma1·sigma2, taken on sigma1's numerical range (two symmetric
    eigendecompositions: 5-6x faster than sqrtm at 2048² on the 2-core dev VM,
    BUILD_NOTES; equal to sqrtm's trace to ~1e-9 relative on full-rank statistics; on
    the singular covariances of fewer images than dimensions sqrtm is off the exact
    value by ~1e-7 of the traces, this by rounding only, in tests/test_fid_math.py);
  * KID: the unbiased MMD² with the cubic polynomial kernel k(x, y) = (x·y/d + 1)³
    over random subsets (Bińkowski et al. 2018; subset sampling as clean-fid's
    `kernel_distance`), reported as the mean and standard deviation over subsets;
  * Inception Score: exp(E_x KL(p(y|x) || p(y))) over 10 splits, from the softmax of
    the network's 1008 logits (Salimans et al. 2016), mean and standard deviation.
Statistics (mu, sigma) are saved as `.npz` files with those two keys, the format
pytorch-fid reads and writes.
"""

from pathlib import Path

import numpy as np

from jaxgan.errors import JaxganError


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(mean, covariance) of [N, D] features, in float64."""
  f = np.asarray(features, np.float64)
  if f.ndim != 2 or f.shape[0] < 2:
    raise JaxganError(f'need at least 2 feature vectors for statistics, got shape {f.shape}')
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, tol: float = 1e-6) -> float:
  mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
  sigma1 = np.atleast_2d(sigma1).astype(np.float64)
  sigma2 = np.atleast_2d(sigma2).astype(np.float64)
  if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
    raise JaxganError(f'statistics differ in dimension: {mu1.shape} vs {mu2.shape}')
  diff = mu1 - mu2
  # tr sqrt(sigma1 sigma2) = tr sqrt(R sigma2 R) with R = sqrt(sigma1) = V S V' (V the
  # eigenvectors of sigma1 on its numerical range, S the roots of their eigenvalues):
  # R sigma2 R = V (S V' sigma2 V S) V', so its eigenvalues are those of the k x k
  # middle matrix. k = d for full-rank statistics (>= d + 1 images, as in any real FID);
  # from n < d images k <= n - 1, and the d x d eigvalsh becomes k x k.
  values, vectors = _psd_eigh(sigma1, 'sigma1', tol)
  _check_symmetric(sigma2, 'sigma2', tol)
  keep = values > values.max() * len(values) * np.finfo(np.float64).eps
  half = vectors[:, keep] * np.sqrt(values[keep])  # V S
  product = half.T @ sigma2 @ half
  eigenvalues = np.linalg.eigvalsh((product + product.T) / 2) if keep.any() else np.zeros(1)
  _check_psd(eigenvalues, 'sigma2', 'sqrt(sigma1)·sigma2·sqrt(sigma1) has', tol)
  trace_sqrt = np.sqrt(np.clip(eigenvalues, 0, None)).sum()
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def _check_symmetric(sigma: np.ndarray, name: str, tol: float) -> None:
  if not np.isfinite(sigma).all():
    raise JaxganError(f'FID: {name} has non-finite entries')
  if np.max(np.abs(sigma - sigma.T)) > tol * max(np.max(np.abs(sigma)), 1e-300):
    raise JaxganError(f'FID: {name} is not symmetric (not a covariance matrix)')


def _check_psd(eigenvalues: np.ndarray, name: str, which: str, tol: float) -> None:
  """One-line error when an eigenvalue is below -tol·the largest (rounding leaves tiny
  negative eigenvalues, which count as 0)."""
  if eigenvalues.min() < -tol * max(eigenvalues.max(), 1e-300):
    raise JaxganError(f'FID: {name} is not positive semi-definite (not a covariance '
                      f'matrix; {which} eigenvalue {eigenvalues.min():.3g})')


def _psd_eigh(sigma: np.ndarray, name: str, tol: float):
  """Eigenvalues and eigenvectors of a covariance; one-line error for a matrix that is
  not one (not symmetric, or not positive semi-definite: `_check_psd`)."""
  _check_symmetric(sigma, name, tol)
  values, vectors = np.linalg.eigh(sigma)
  _check_psd(values, name, 'it has', tol)
  return values, vectors


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
