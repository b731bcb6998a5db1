"""Paired scores (L1, PSNR, SSIM) against hand-worked values, closed forms and scikit-image."""

import math
import warnings

import numpy as np
import pytest

from jaxgan.errors import JaxganError
from jaxgan.metrics import paired

C1 = (0.01 * 255) ** 2
C2 = (0.03 * 255) ** 2


def _full(value, shape=(1, 12, 12, 3)):
  return np.full(shape, value, np.uint8)


# ---------------------------------------------------------------------------------------
# L1 and PSNR by hand.


def test_l1_and_psnr_for_a_constant_difference():
  # 10 grey levels everywhere: |d| = 10 -> 10 / 127.5; MSE = 100.
  fake, real = _full(110), _full(100)
  assert paired.l1(fake, real) == pytest.approx([10 / 127.5], rel=1e-15)
  assert paired.psnr(fake, real) == pytest.approx([10 * math.log10(255**2 / 100)], rel=1e-15)
  # The sign of the difference does not matter.
  assert paired.l1(real, fake) == pytest.approx([10 / 127.5], rel=1e-15)


def test_l1_and_psnr_per_image_with_half_the_pixels_wrong():
  real = np.full((2, 12, 16, 1), 50, np.uint8)
  fake = real.copy()
  fake[0, :, :8] = 80      # image 0: half the pixels off by 30 -> mean |d| 15, MSE 450
  fake[1, :6] = 20         # image 1: half the pixels off by -30 -> the same scores
  fake[1, 6:, :4] = 110    # ... plus an eighth of all pixels off by 60:
  #                          mean |d| 15 + 60 / 8 = 22.5, MSE 450 + 3600 / 8 = 900
  np.testing.assert_allclose(paired.l1(fake, real), [15 / 127.5, 22.5 / 127.5], rtol=1e-15)
  np.testing.assert_allclose(paired.psnr(fake, real),
                             [10 * math.log10(255**2 / 450), 10 * math.log10(255**2 / 900)],
                             rtol=1e-15)


def test_extremes_do_not_wrap_around_in_uint8():
  # 0 vs 255: l1 = 255 / 127.5 = 2 (the full [-1, 1] range); MSE = 255^2 -> 0 dB.
  fake, real = _full(0), _full(255)
  assert paired.l1(fake, real) == pytest.approx([2.0], rel=1e-15)
  assert paired.l1(real, fake) == pytest.approx([2.0], rel=1e-15)
  assert paired.psnr(fake, real) == pytest.approx([0.0], abs=1e-12)


def test_identical_images_have_zero_l1_and_infinite_psnr_without_warnings():
  x = np.random.default_rng(5).integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
  with warnings.catch_warnings():
    warnings.simplefilter('error')
    p = paired.psnr(x, x.copy())
  assert np.all(np.isposinf(p))
  np.testing.assert_array_equal(paired.l1(x, x.copy()), 0.0)


# ---------------------------------------------------------------------------------------
# SSIM against closed forms and a direct per-window evaluation.


def _direct_ssim(fake, real):
  """Wang et al. 2004 evaluated window by window, independently of scipy's filters.

  Only pixels at least 5 from every border are averaged, so every 11x11 window lies
  inside the image and no border mode is involved.
  """
  k = np.arange(-5, 6, dtype=np.float64)
  g = np.exp(-k**2 / (2 * 1.5**2))
  w = np.outer(g, g) / np.outer(g, g).sum()
  out = []
  for f, r in zip(fake.astype(np.float64), real.astype(np.float64)):
    per_channel = []
    for c in range(f.shape[-1]):
      fw = np.lib.stride_tricks.sliding_window_view(f[..., c], (11, 11))
      rw = np.lib.stride_tricks.sliding_window_view(r[..., c], (11, 11))
      mx, my = (fw * w).sum((-2, -1)), (rw * w).sum((-2, -1))
      vx = (w * (fw - mx[..., None, None])**2).sum((-2, -1))
      vy = (w * (rw - my[..., None, None])**2).sum((-2, -1))
      cxy = (w * (fw - mx[..., None, None]) * (rw - my[..., None, None])).sum((-2, -1))
      s = ((2 * mx * my + C1) * (2 * cxy + C2)) / ((mx**2 + my**2 + C1) * (vx + vy + C2))
      per_channel.append(s.mean())
    out.append(np.mean(per_channel))
  return np.array(out)


def test_ssim_of_identical_images_is_exactly_one():
  x = np.random.default_rng(6).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
  np.testing.assert_array_equal(paired.ssim(x, x.copy()), 1.0)


@pytest.mark.parametrize('c1,c2', [(100, 150), (0, 255), (30, 31), (200, 200)])
def test_ssim_of_constant_images_is_the_luminance_term(c1, c2):
  # Constant images have zero variance and covariance: the structure term is C2 / C2.
  expected = (2 * c1 * c2 + C1) / (c1**2 + c2**2 + C1)
  for channels in (1, 3):
    shape = (1, 13, 17, channels)
    got = paired.ssim(_full(c1, shape), _full(c2, shape))
    assert got == pytest.approx([expected], rel=1e-9, abs=1e-12)


def test_ssim_is_symmetric():
  rng = np.random.default_rng(7)
  a = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
  b = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
  np.testing.assert_allclose(paired.ssim(a, b), paired.ssim(b, a), rtol=1e-13, atol=1e-15)


def test_ssim_grey_level_shift_changes_only_the_luminance_term():
  # y = x + d: the variances and covariance are unchanged, so the contrast-structure
  # term (2 cov + C2) / (var x + var y + C2) is 1 and SSIM is the mean luminance term.
  x = np.random.default_rng(8).integers(0, 200, (2, 24, 30, 3), dtype=np.uint8)
  y = x + np.uint8(40)
  k = np.arange(-5, 6, dtype=np.float64)
  g = np.exp(-k**2 / (2 * 1.5**2))
  w = np.outer(g, g) / np.outer(g, g).sum()
  expected = []
  for img in x.astype(np.float64):
    lum = []
    for c in range(3):
      mx = (np.lib.stride_tricks.sliding_window_view(img[..., c], (11, 11)) * w).sum((-2, -1))
      my = mx + 40
      lum.append(((2 * mx * my + C1) / (mx**2 + my**2 + C1)).mean())
    expected.append(np.mean(lum))
  got = paired.ssim(y, x)
  np.testing.assert_allclose(got, expected, rtol=1e-10)
  assert np.all(got < 1)


def test_ssim_matches_a_direct_window_by_window_evaluation():
  rng = np.random.default_rng(9)
  a = rng.integers(0, 256, (2, 19, 22, 3), dtype=np.uint8)
  b = np.clip(a + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
  np.testing.assert_allclose(paired.ssim(b, a), _direct_ssim(b, a), rtol=1e-10, atol=1e-12)
  g = rng.integers(0, 256, (2, 11, 15, 1), dtype=np.uint8)
  h = rng.integers(0, 256, (2, 11, 15, 1), dtype=np.uint8)
  np.testing.assert_allclose(paired.ssim(g, h), _direct_ssim(g, h), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Agreement with scikit-image.
#
# Reference numbers produced with scikit-image 0.26.0 (NumPy 2.4.6, SciPy 1.17.1) in a
# scratch venv outside the project, on exactly the arrays `_reference_inputs()` builds,
# image by image:
#   skimage.metrics.structural_similarity(fake[i], real[i], data_range=255,
#       channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
#   skimage.metrics.peak_signal_noise_ratio(real[i], fake[i], data_range=255)
# printed with repr(float(...)). The two integers are sum(fake) and sum(real), a
# fingerprint of the inputs so a change in NumPy's random stream fails clearly here
# rather than as a score mismatch.
SKIMAGE_REFERENCE = {
    'random_32x40x3': ([-0.03402508992400861, 0.016845131054334102],
                       [7.5080078031241415, 7.745551056615043], 978884, 984067),
    'noisy_64x64x3': ([0.9873315569317871, 0.9874490709291619],
                      [26.85588544789775, 26.867223630106768], 3119253, 3121032),
    'shifted_pattern_64x64x3': ([0.723245547308768], [12.749257089056975], 1536000, 1536000),
    'noisy_17x23x1': ([0.9554888048165723], [21.25416855964433], 51819, 52355),
    'random_11x11x1': ([-0.22318456884718146], [7.355902293779595], 14529, 15912),
}


def _reference_inputs():
  rng = np.random.default_rng(0)
  rand = rng.integers(0, 256, (2, 2, 32, 40, 3), dtype=np.uint8)
  clean = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
  noisy = np.clip(clean + rng.integers(-20, 21, clean.shape), 0, 255).astype(np.uint8)
  yy, xx = np.mgrid[0:64, 0:64]
  ramp = (xx * 3 + yy) % 256
  check = ((xx // 8 + yy // 8) % 2) * 160 + 40
  struct = np.stack([ramp, check, 255 - ramp], -1).astype(np.uint8)[None]
  shifted = np.roll(struct, (1, 2), axis=(1, 2))
  gray = rng.integers(0, 256, (1, 17, 23, 1), dtype=np.uint8)
  gray_noisy = np.clip(gray + rng.integers(-40, 41, gray.shape), 0, 255).astype(np.uint8)
  tiny = rng.integers(0, 256, (2, 1, 11, 11, 1), dtype=np.uint8)
  return {
      'random_32x40x3': (rand[0], rand[1]),
      'noisy_64x64x3': (noisy, clean),
      'shifted_pattern_64x64x3': (shifted, struct),
      'noisy_17x23x1': (gray_noisy, gray),
      'random_11x11x1': (tiny[0], tiny[1]),
  }


@pytest.mark.parametrize('name', sorted(SKIMAGE_REFERENCE))
def test_agrees_with_scikit_image(name):
  fake, real = _reference_inputs()[name]
  want_ssim, want_psnr, fake_sum, real_sum = SKIMAGE_REFERENCE[name]
  assert (int(fake.astype(np.int64).sum()), int(real.astype(np.int64).sum())) == (
      fake_sum, real_sum), 'the reference inputs changed; regenerate the skimage numbers'
  np.testing.assert_allclose(paired.ssim(fake, real), want_ssim, rtol=0, atol=1e-9)
  np.testing.assert_allclose(paired.psnr(fake, real), want_psnr, rtol=1e-12)


def test_batches_split_across_chunks_score_the_same(monkeypatch):
  # One image per chunk, and a chunk boundary inside the batch.
  monkeypatch.setattr(paired, '_CHUNK_VALUES', 32 * 40 * 3)
  fake, real = _reference_inputs()['random_32x40x3']
  np.testing.assert_allclose(paired.ssim(fake, real),
                             SKIMAGE_REFERENCE['random_32x40x3'][0], rtol=0, atol=1e-9)
  np.testing.assert_allclose(paired.psnr(fake, real),
                             SKIMAGE_REFERENCE['random_32x40x3'][1], rtol=1e-12)
  monkeypatch.setattr(paired, '_CHUNK_VALUES', 2 * 12 * 12)
  real = np.full((3, 12, 12, 1), 50, np.uint8)
  fake = real + np.arange(3, dtype=np.uint8)[:, None, None, None] * 10  # off by 0, 10, 20
  np.testing.assert_allclose(paired.l1(fake, real), [0, 10 / 127.5, 20 / 127.5], rtol=1e-15)
  monkeypatch.setattr(paired, '_CHUNK_VALUES', 64 * 64 * 3 + 1)
  fake, real = _reference_inputs()['noisy_64x64x3']
  np.testing.assert_allclose(paired.ssim(fake, real),
                             SKIMAGE_REFERENCE['noisy_64x64x3'][0], rtol=0, atol=1e-9)


def test_scores_returns_all_three_per_image():
  fake, real = _full(110, (2, 12, 12, 3)), _full(100, (2, 12, 12, 3))
  s = paired.scores(fake, real)
  assert set(s) == {'l1', 'psnr', 'ssim'}
  np.testing.assert_allclose(s['l1'], [10 / 127.5] * 2, rtol=1e-15)
  np.testing.assert_allclose(s['psnr'], [10 * math.log10(255**2 / 100)] * 2, rtol=1e-15)
  np.testing.assert_allclose(s['ssim'], [(2 * 110 * 100 + C1) / (110**2 + 100**2 + C1)] * 2,
                             rtol=1e-9)
  assert all(v.dtype == np.float64 and v.shape == (2,) for v in s.values())


# ---------------------------------------------------------------------------------------
# Bad inputs.


@pytest.mark.parametrize('fn', [paired.l1, paired.psnr, paired.ssim, paired.scores])
def test_shape_mismatch_is_an_error_naming_both_shapes(fn):
  with pytest.raises(JaxganError, match=r'\(2, 16, 16, 3\).*\(2, 16, 16, 1\)'):
    fn(_full(0, (2, 16, 16, 3)), _full(0, (2, 16, 16, 1)))


@pytest.mark.parametrize('shape', [(1, 10, 32, 3), (1, 32, 10, 3), (2, 8, 8, 1)])
def test_images_smaller_than_the_window_are_an_error(shape):
  with pytest.raises(JaxganError, match='11x11'):
    paired.ssim(_full(0, shape), _full(0, shape))
  # The pixel scores have no window and still work.
  assert paired.l1(_full(0, shape), _full(0, shape)).shape == (shape[0],)


def test_non_uint8_or_unbatched_inputs_are_errors():
  x = np.zeros((1, 16, 16, 3), np.float32)
  with pytest.raises(JaxganError, match='uint8'):
    paired.l1(x, x)
  with pytest.raises(JaxganError, match=r'\[N, H, W, C\]'):
    paired.ssim(_full(0, (16, 16, 3)), _full(0, (16, 16, 3)))
  with pytest.raises(JaxganError, match='non-empty'):
    paired.l1(_full(0, (2, 0, 16, 3)), _full(0, (2, 0, 16, 3)))
