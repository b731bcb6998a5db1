"""Per-image scores of a translated image against its true target (paired evaluation).

For pix2pix-style models each generated image has a ground truth, so it can be scored
image by image. All three scores take uint8 [N, H, W, C] arrays `fake` and `real` and
return one float64 value per image:
  * `l1`: mean |fake - real| in the model's [-1, 1] pixel units (grey levels / 127.5),
    the quantity the training L1 loss measures;
  * `psnr`: 10·log10(255² / MSE) in dB, +inf for identical images;
  * `ssim`: the SSIM of Wang et al. 2004 exactly as scikit-image's
    `structural_similarity(x, y, data_range=255, channel_axis=-1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False)` computes it: Gaussian-weighted local
    statistics (sigma 1.5 truncated at 3.5 sigma, an 11x11 window, scipy.ndimage
    'reflect' borders), K1 = 0.01, K2 = 0.03, L = 255, the SSIM map cropped by 5 pixels
    on each border before averaging, per channel, then averaged over channels.
Nothing here depends on JAX; the computation is float64 NumPy/SciPy on the host.
"""

import numpy as np
from scipy import ndimage

from jaxgan.errors import JaxganError

_SIGMA = 1.5
_TRUNCATE = 3.5
WIN_SIZE = 2 * int(_TRUNCATE * _SIGMA + 0.5) + 1  # 11, the radius rule of scipy.ndimage
_K1, _K2, _L = 0.01, 0.03, 255.0
_C1, _C2 = (_K1 * _L) ** 2, (_K2 * _L) ** 2
# Pixel values per chunk of images (2 MiB per float64 plane): small chunks stay in cache and
# were fastest when measured (one 256x256x3 image per chunk: ~13 ms vs ~23 ms at 21).
_CHUNK_VALUES = 1 << 18


def _check(fake, real) -> tuple[np.ndarray, np.ndarray]:
  fake, real = np.asarray(fake), np.asarray(real)
  if fake.shape != real.shape:
    raise JaxganError(f'fake and real images differ in shape: {fake.shape} vs {real.shape}')
  if fake.ndim != 4:
    raise JaxganError(f'paired scores need [N, H, W, C] image batches, got shape {fake.shape}')
  if 0 in fake.shape[1:]:
    raise JaxganError(f'paired scores need non-empty images, got shape {fake.shape}')
  if fake.dtype != np.uint8 or real.dtype != np.uint8:
    raise JaxganError(f'paired scores need uint8 images in [0, 255], got {fake.dtype} '
                      f'(fake) and {real.dtype} (real)')
  return fake, real


def _chunks(shape):
  """Slices of the batch axis holding about `_CHUNK_VALUES` pixel values each."""
  n, h, w, c = shape
  step = max(1, _CHUNK_VALUES // (h * w * c))
  return [slice(start, start + step) for start in range(0, n, step)]


def _difference_sums(fake, real, power: int) -> np.ndarray:
  """[N] sum over each image of |fake - real|**power, exact in int64."""
  out = np.empty(fake.shape[0], np.int64)
  for part in _chunks(fake.shape):
    d = np.abs(fake[part].astype(np.int32) - real[part])
    out[part] = (d if power == 1 else d * d).sum(axis=(1, 2, 3), dtype=np.int64)
  return out


def l1(fake, real) -> np.ndarray:
  """[N] mean absolute difference per image, in [-1, 1] pixel units (grey levels / 127.5)."""
  fake, real = _check(fake, real)
  return _difference_sums(fake, real, 1) / np.prod(fake.shape[1:]) / 127.5


def psnr(fake, real) -> np.ndarray:
  """[N] peak signal-to-noise ratio per image in dB, 10·log10(255² / MSE).

  An image identical to its target has MSE 0 and a PSNR of +inf; the value is returned
  as is, so a caller averaging over a set decides how to treat it (e.g. average the
  finite values, or report the count of exact matches).
  """
  fake, real = _check(fake, real)
  mse = _difference_sums(fake, real, 2) / np.prod(fake.shape[1:])
  with np.errstate(divide='ignore'):
    return 10 * np.log10(_L ** 2 / mse)


def _ssim_chunk(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """[B] SSIM of float64 [B, C, H, W] planes, averaged over the C channel planes."""
  # One filter call smooths all five moment planes; sigma 0 axes are left untouched,
  # and the two spatial passes run in the same order (H, then W) as scikit-image's.
  moments = np.stack([x, y, x * x, y * y, x * y])
  ux, uy, uxx, uyy, uxy = ndimage.gaussian_filter(
      moments, sigma=_SIGMA, truncate=_TRUNCATE, mode='reflect', axes=(3, 4))
  vx = uxx - ux * ux
  vy = uyy - uy * uy
  vxy = uxy - ux * uy
  a1, a2 = 2 * ux * uy + _C1, 2 * vxy + _C2
  b1, b2 = ux ** 2 + uy ** 2 + _C1, vx + vy + _C2
  s = (a1 * a2) / (b1 * b2)
  # The crop equals the window radius, so no map pixel whose window reaches past the
  # image enters the mean (the border mode cannot change the score).
  pad = (WIN_SIZE - 1) // 2
  per_channel = s[..., pad:-pad, pad:-pad].mean(axis=(2, 3), dtype=np.float64)
  return per_channel.mean(axis=1)


def ssim(fake, real) -> np.ndarray:
  """[N] structural similarity per image (Wang et al. 2004; scikit-image's numbers).

  Raises JaxganError for images smaller than the 11x11 window on either side.
  """
  fake, real = _check(fake, real)
  n, h, w = fake.shape[:3]
  if h < WIN_SIZE or w < WIN_SIZE:
    raise JaxganError(f'SSIM needs images of at least {WIN_SIZE}x{WIN_SIZE} pixels '
                      f'(its Gaussian window), got {h}x{w}')
  out = np.empty(n, np.float64)
  for part in _chunks(fake.shape):
    # Channels-first makes each image plane contiguous for the row/column passes.
    x = fake[part].transpose(0, 3, 1, 2).astype(np.float64)
    y = real[part].transpose(0, 3, 1, 2).astype(np.float64)
    out[part] = _ssim_chunk(x, y)
  return out


def scores(fake, real) -> dict[str, np.ndarray]:
  """{'l1', 'psnr', 'ssim'}: each an [N] float64 array of per-image scores."""
  return {'l1': l1(fake, real), 'psnr': psnr(fake, real), 'ssim': ssim(fake, real)}
