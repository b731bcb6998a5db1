"""FID, KID and Inception Score against closed forms and constructed inputs."""

import math

import numpy as np
import pytest

from jaxgan.errors import JaxganError
from jaxgan.metrics import feature_scores


def test_fid_of_a_set_with_itself_is_zero():
  f = np.random.default_rng(0).normal(size=(500, 16))
  mu, sigma = feature_scores.statistics(f)
  assert abs(feature_scores.frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_fid_closed_form_for_diagonal_gaussians():
  # d^2 = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)) for diagonal covariances.
  mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
  s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
  expected = 1 + 0 + 4 + (1 + 4 - 4) + (4 + 1 - 4) + (9 + 1 - 6)
  got = feature_scores.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
  assert got == pytest.approx(expected)


def test_fid_closed_form_full_covariance_from_samples():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(4, 4))
  sigma = a @ a.T + np.eye(4)
  mu1, mu2 = np.zeros(4), np.ones(4)
  # Same covariance: FID = |mu1 - mu2|^2 exactly (sqrt(sigma sigma) = sigma).
  got = feature_scores.frechet_distance(mu1, sigma, mu2, sigma)
  assert got == pytest.approx(4.0, abs=1e-8)
  # Sampled: the estimate converges to the closed form 4 + tr(S + 4S - 2*2S) = 4 + tr(S).
  x = rng.multivariate_normal(mu1, sigma, size=200000)
  y = rng.multivariate_normal(mu2, 4 * sigma, size=200000)
  got = feature_scores.frechet_distance(*feature_scores.statistics(x),
                                       *feature_scores.statistics(y))
  assert got == pytest.approx(4 + np.trace(sigma), rel=0.02)


def test_fid_singular_covariances_are_handled():
  rng = np.random.default_rng(2)
  f1 = rng.normal(size=(5, 32))  # rank 4 covariance in 32 dimensions
  f2 = rng.normal(size=(5, 32))
  value = feature_scores.frechet_distance(*feature_scores.statistics(f1),
                                         *feature_scores.statistics(f2))
  assert np.isfinite(value) and value > 0


def test_fid_trace_equals_scipy_sqrtm_on_full_rank_statistics():
  # pytorch-fid's own computation of the cross term: tr(sqrtm(sigma1 @ sigma2)).
  from scipy import linalg
  rng = np.random.default_rng(4)
  x, y = rng.normal(size=(300, 40)), rng.normal(size=(300, 40)) @ rng.normal(size=(40, 40))
  (mu1, s1), (mu2, s2) = feature_scores.statistics(x), feature_scores.statistics(y)
  expected = (np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
              - 2 * np.trace(linalg.sqrtm(s1 @ s2)).real)
  assert feature_scores.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected,
                                                                            rel=1e-9)


def test_fid_of_singular_covariances_against_the_exact_value():
  # 8 images in 256 dimensions (rank-7 covariances). With sigma1 = A'A, sigma2 = B'B (A,
  # B the centred features / sqrt(n - 1)), sigma1 sigma2 has the nonzero eigenvalues of
  # (A B')(A B')', so tr(sqrt(sigma1 sigma2)) is the sum of the singular values of the
  # 8 x 8 matrix A B' (exact to rounding). A 256-wide root of a singular product gets
  # this to ~1e-7 of the traces only (scipy's sqrtm, pytorch-fid's way, included; so did
  # the full 256 x 256 eigvalsh of r sigma2 r): the rounding noise of the null space
  # counts. frechet_distance works on sigma1's numerical range (7 dimensions here),
  # which leaves only rounding.
  rng = np.random.default_rng(5)
  x, y = rng.normal(size=(8, 256)) * 10, rng.normal(size=(8, 256)) * 10 + 0.5
  (mu1, s1), (mu2, s2) = feature_scores.statistics(x), feature_scores.statistics(y)
  a, b = (x - mu1) / np.sqrt(7), (y - mu2) / np.sqrt(7)
  cross = np.linalg.svd(a @ b.T, compute_uv=False).sum()
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * cross
  got = feature_scores.frechet_distance(mu1, s1, mu2, s2)
  assert got == pytest.approx(expected, abs=1e-12 * (np.trace(s1) + np.trace(s2)))


def test_fid_refuses_what_is_not_a_covariance():
  mu, sigma = np.zeros(3), np.diag([1.0, 2.0, 3.0])
  with pytest.raises(JaxganError, match='sigma2 is not positive semi-definite'):
    feature_scores.frechet_distance(mu, sigma, mu, np.diag([1.0, -2.0, 3.0]))
  with pytest.raises(JaxganError, match='sigma1 is not symmetric'):
    feature_scores.frechet_distance(mu, np.triu(np.ones((3, 3))), mu, sigma)


def test_kid_zero_for_same_distribution_and_positive_otherwise():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
  mean, std = feature_scores.kernel_inception_distance(x, y, num_subsets=20,
                                                       subset_size=200)
  assert abs(mean) < 3 * std + 1e-3
  far = feature_scores.kernel_inception_distance(x, y + 2.0, num_subsets=20,
                                                 subset_size=200)[0]
  assert far > 10 * max(abs(mean), 1e-4)


def test_kid_hand_computed_single_subset():
  # d = 1, x = [0, 1], y = [0, 0]: k(0,0) = 1, k(0,1) = 1, k(1,1) = 8.
  # within: (kxx offdiag 1+1 + kyy offdiag 1+1) / (2*1) = 2; cross mean = 1 -> 2 - 2 = 0
  # and with x = [1, 1], y = [0, 0]: within (8+8 + 1+1)/2 = 9, cross = 1 -> 7.
  x, y = np.array([[1.0], [1.0]]), np.array([[0.0], [0.0]])
  mean, std = feature_scores.kernel_inception_distance(y, x, num_subsets=3,
                                                       subset_size=2)
  assert mean == pytest.approx(7.0) and std == pytest.approx(0.0)


def test_inception_score_known_distributions():
  # Uniform predictions: p(y|x) = p(y) -> KL 0 -> IS 1.
  uniform = feature_scores.inception_score(np.zeros((100, 1008)))[0]
  assert uniform == pytest.approx(1.0)
  # Confident, evenly spread over K classes within every split -> IS = K.
  k = 8
  logits = np.full((10 * k * 3, 1008), -1e4)
  logits[np.arange(logits.shape[0]), np.arange(logits.shape[0]) % k] = 0.0
  mean, std = feature_scores.inception_score(logits)
  assert mean == pytest.approx(k, rel=1e-6) and std == pytest.approx(0.0, abs=1e-6)
  # Two classes with p = (0.9, 0.1) and (0.1, 0.9), half each: KL = 0.9 ln 1.8 + 0.1 ln 0.2.
  logits = np.full((20, 1008), -1e4)
  logits[:, :2] = np.log([0.9, 0.1])
  logits[1::2, :2] = np.log([0.1, 0.9])
  expected = math.exp(0.9 * math.log(1.8) + 0.1 * math.log(0.2))
  got = feature_scores.inception_score(logits)[0]
  assert got == pytest.approx(expected, rel=1e-6)
  with pytest.raises(JaxganError, match='at least 10 images'):
    feature_scores.inception_score(np.zeros((5, 1008)))


def test_statistics_round_trip(tmp_path):
  mu, sigma = np.arange(3.0), np.eye(3)
  feature_scores.save_statistics(tmp_path / 's.npz', mu, sigma)
  mu2, sigma2 = feature_scores.load_statistics(tmp_path / 's.npz')
  np.testing.assert_array_equal(mu, mu2)
  np.testing.assert_array_equal(sigma, sigma2)
  with pytest.raises(JaxganError, match='not found'):
    feature_scores.load_statistics(tmp_path / 'none.npz')
  np.savez(tmp_path / 'bad.npz', x=1)
  with pytest.raises(JaxganError, match='mu and sigma'):
    feature_scores.load_statistics(tmp_path / 'bad.npz')
