"""Synthetic two-domain images with an exactly known translation, for scoring models.

This module owns the procedural `synthetic` source's pixels and its ground truth.

Domain A: "sunset" scenes. A smooth two-colour gradient at a random angle, 2-4 random
ellipses / rectangles (random size, position, rotation), and mild per-pixel texture
noise. Every colour is drawn from a warm palette: hue within +-25 degrees of red,
saturation 0.35-0.95, value 0.5-1.

Domain B: the photographic negative of the same scene, per pixel and per channel:

    b = 255 - a            (uint8)        b = -a            (floats in [-1, 1])

`b_from_a` is that map; it is its own inverse, so it is also `a_from_b`. The palette is
chosen so the map is the only simple one a CycleGAN can converge to: the negative sends
the reds to cyans (hue + 180 degrees), while the identity, every channel permutation and
every permutation combined with the negative send them at least 60 degrees away from
cyan, so the discriminators can tell them apart. (A palette spanning all hues would
make the identity map a perfect, useless solution: A and B would look alike.)

Image i of a split is drawn from `np.random.default_rng([seed, split_id, i])`, so it
does not depend on how many images are asked for.
"""

from __future__ import annotations

import numpy as np

SPLIT_IDS = {'train': 0, 'test': 1}


def b_from_a(a: np.ndarray) -> np.ndarray:
  """The exact A -> B map (and B -> A: it is an involution). See the module doc.

  uint8 arrays map as 255 - a; float arrays are taken to be model pixels in [-1, 1]
  and map as -a (the same map in that range).
  """
  a = np.asarray(a)
  if a.dtype == np.uint8:
    return 255 - a
  return -a


a_from_b = b_from_a


def _hsv_to_rgb(h, s, v):
  """Vectorised HSV -> RGB; h in turns (1.0 = 360 degrees), all shapes broadcast."""
  h = np.mod(h, 1.0)
  k = np.mod(np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0, 6.0)
  return v[..., None] - (v * s)[..., None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _palette(rng: np.random.Generator, n: int) -> np.ndarray:
  """n warm colours, float [n, 3] in [0, 1]."""
  h = rng.uniform(-25.0, 25.0, n) / 360.0
  s = rng.uniform(0.35, 0.95, n)
  v = rng.uniform(0.5, 1.0, n)
  return _hsv_to_rgb(h, s, v)


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
  """One domain-A image, uint8 [size, size, 3]."""
  coords = (np.arange(size, dtype=np.float64) + 0.5) / size - 0.5
  y, x = np.meshgrid(coords, coords, indexing='ij')

  c0, c1 = _palette(rng, 2)
  theta = rng.uniform(0.0, 2.0 * np.pi)
  t = np.clip(0.5 + x * np.cos(theta) + y * np.sin(theta), 0.0, 1.0)[..., None]
  img = c0 * (1.0 - t) + c1 * t

  n_shapes = int(rng.integers(2, 5))
  kinds = rng.integers(0, 2, n_shapes)  # 0: ellipse, 1: rectangle.
  centres = rng.uniform(-0.35, 0.35, (n_shapes, 2))
  radii = rng.uniform(0.08, 0.3, (n_shapes, 2))
  angles = rng.uniform(0.0, np.pi, n_shapes)
  colours = _palette(rng, n_shapes)
  for kind, (cx, cy), (rx, ry), ang, colour in zip(kinds, centres, radii, angles,
                                                   colours):
    dx, dy = x - cx, y - cy
    u = dx * np.cos(ang) + dy * np.sin(ang)
    w = -dx * np.sin(ang) + dy * np.cos(ang)
    if kind == 0:
      inside = (u / rx) ** 2 + (w / ry) ** 2 <= 1.0
    else:
      inside = (np.abs(u) <= rx) & (np.abs(w) <= ry)
    img = np.where(inside[..., None], colour, img)

  img = img + rng.normal(0.0, 0.03, img.shape)  # Mild texture.
  return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def synthetic_pairs(seed: int, n: int, size: int,
                    split: str = 'train') -> tuple[np.ndarray, np.ndarray]:
  """The first n (A, B) pairs of a split: two uint8 [n, size, size, 3] arrays.

  `b == b_from_a(a)` exactly. Deterministic in (seed, split, i) for image i.
  """
  if split not in SPLIT_IDS:
    raise ValueError(f'synthetic split must be one of {sorted(SPLIT_IDS)}, got {split!r}')
  a = np.empty((n, size, size, 3), np.uint8)
  for i in range(n):
    a[i] = _scene(np.random.default_rng([seed, SPLIT_IDS[split], i]), size)
  return a, b_from_a(a)
