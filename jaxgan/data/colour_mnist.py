"""Coloured MNIST: a two-domain benchmark with a known answer for style-controlled
translation (issue 19).

Domain A: MNIST digits in gray (replicated to RGB). Domain B: digits coloured as
bg·(1 − x) + fg·x, x the digit's intensity in [0, 1], with a palette (fg, bg) drawn
per image, each uniform in [0, 1]³ and redrawn while ‖fg − bg‖ < MIN_CONTRAST. A and
B come from disjoint halves of the training set (even and odd positions of a seeded
permutation), so the training data is unpaired; the test split colours the test
digits the same way, with its own palettes. Everything is a pure function of the
seed: `palettes(seed, split, n)` gives the palettes B used, so a benchmark can build
the exact answer colourise(a, fg_ref, bg_ref) for any gray digit a.
"""

import numpy as np

MIN_CONTRAST = 0.5  # ‖fg − bg‖ below this is redrawn (a near-invisible digit)
_SPLIT_STREAMS = {'train': 1, 'test': 2}


def palettes(seed: int, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
  """(fg, bg), each float64 [n, 3] in [0, 1], the palettes of B's n images of `split`
  for `seed`; ‖fg − bg‖ >= MIN_CONTRAST for each."""
  rng = np.random.default_rng([seed, _SPLIT_STREAMS[split], 0xC010])
  fg, bg = rng.uniform(size=(n, 3)), rng.uniform(size=(n, 3))
  while True:
    low = np.linalg.norm(fg - bg, axis=1) < MIN_CONTRAST
    if not low.any():
      return fg, bg
    fg[low] = rng.uniform(size=(int(low.sum()), 3))
    bg[low] = rng.uniform(size=(int(low.sum()), 3))


def colourise(gray: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
  """bg·(1 − x) + fg·x: gray [N, H, W] (or [N, H, W, 1]) in [0, 1], fg and bg
  [N, 3] -> float [N, H, W, 3] in [0, 1]."""
  x = np.asarray(gray, np.float64)
  x = x[..., None] if x.shape[-1] != 1 else x
  return bg[:, None, None, :] * (1.0 - x) + fg[:, None, None, :] * x


def to_uint8(x: np.ndarray) -> np.ndarray:
  return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)


def halves(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
  """Disjoint index sets of A and B in a training set of n digits."""
  order = np.random.default_rng([seed, 0xC011]).permutation(n)
  return np.sort(order[0::2]), np.sort(order[1::2])


def domains(digits: np.ndarray, seed: int, split: str):
  """(A uint8 [Na, H, W, 3] gray, B uint8 [Nb, H, W, 3] coloured, indices of A's and
  B's digits in `digits`) of `split`; `digits` uint8 [N, H, W]. The test split colours
  every test digit (A and B show the same digits, with unknown palettes to a model)."""
  n = len(digits)
  if split == 'train':
    idx_a, idx_b = halves(seed, n)
  else:
    idx_a = idx_b = np.arange(n)
  gray = digits.astype(np.float64) / 255.0
  a = np.repeat(digits[idx_a][..., None], 3, axis=-1)
  fg, bg = palettes(seed, split, len(idx_b))
  b = to_uint8(colourise(gray[idx_b], fg, bg))
  return a, b, idx_a, idx_b


def fit_palettes(gray: np.ndarray, rgb: np.ndarray):
  """The palette each image is coloured in, by least squares: per image and channel,
  rgb = bg + (fg − bg)·x over the pixels, x the gray digit. gray [N, H, W] (or
  [N, H, W, 1]) and rgb [N, H, W, 3], both in [0, 1]. Returns (fg [N, 3], bg [N, 3],
  the RMS residual per image [N]): a cleanly coloured digit has residual ~0, and a
  blurred or wrong-shaped one does not."""
  x = np.asarray(gray, np.float64).reshape(len(gray), -1)          # [N, P]
  y = np.asarray(rgb, np.float64).reshape(len(rgb), -1, 3)          # [N, P, 3]
  xc = x - x.mean(axis=1, keepdims=True)
  yc = y - y.mean(axis=1, keepdims=True)
  var = np.maximum((xc ** 2).sum(axis=1), 1e-12)[:, None]           # [N, 1]
  slope = np.einsum('np,npc->nc', xc, yc) / var                     # fg - bg
  bg = y.mean(axis=1) - slope * x.mean(axis=1, keepdims=True)
  fg = bg + slope
  fitted = bg[:, None, :] + slope[:, None, :] * x[..., None]
  residual = np.sqrt(((y - fitted) ** 2).mean(axis=(1, 2)))
  return fg, bg, residual
