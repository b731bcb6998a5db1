"""Inception features of image sets: weights lookup, batching, device sharding.

Images (uint8 RGB, any size) are grouped by size, batched to a fixed batch shape (the
last batch padded, so each size compiles once) and placed split along the mesh's
`data` axis; the jitted network runs on every device of the mesh.
"""

import logging
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import jax
import numpy as np

from jaxgan import images, sharding
from jaxgan.errors import JaxganError


def load_variables(path=None):
  """The FID Inception variables from `path`, or from the default places
  (`jaxgan.metrics.weights.default_weights_path`)."""
  from jaxgan.metrics import inception, weights
  path = path or weights.default_weights_path()  # raises, one line, if there are none
  return inception.variables_from_npz_dict(weights.load_weights_dict(path))


def read_images(files, skipped: list) -> Iterator[np.ndarray]:
  """uint8 images of `files`; unreadable ones are appended to `skipped`."""
  for path in files:
    try:
      yield images.read_rgb(path)
    except JaxganError:
      skipped.append(Path(path).name)


class Extractor:
  """Computes pool3 features (and logits, when the weights have the classifier)."""

  def __init__(self, variables, *, batch_size: int = 50, mesh=None):
    from jaxgan.metrics import inception
    self.mesh = mesh or sharding.make_mesh()
    devices = self.mesh.shape[sharding.DATA_AXIS]
    self.batch_size = -(-batch_size // devices) * devices  # a multiple of the devices
    self.has_logits = inception.has_logits(variables)
    self._fn = inception.make_feature_fn(variables)
    self._sharding = sharding.batch_sharded(self.mesh)
    # Progress lines for long runs (10k images take 13-30 min on a 2-core CPU).
    self.log_every_s = 60.0

  def _run(self, batch: np.ndarray, n: int, out: dict) -> None:
    padded = np.zeros((self.batch_size,) + batch.shape[1:], batch.dtype)
    padded[:n] = batch[:n]
    result = self._fn(jax.device_put(padded, self._sharding))
    for key, value in result.items():
      out.setdefault(key, []).append(np.asarray(value)[:n])

  def __call__(self, uint8_images: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, list] = {}
    pending: dict[tuple, list] = {}
    start = time.monotonic()
    next_log, done = start + self.log_every_s, 0
    for img in uint8_images:
      group = pending.setdefault(img.shape, [])
      group.append(img)
      if len(group) == self.batch_size:
        self._run(np.stack(group), len(group), out)
        done += len(group)
        group.clear()
        now = time.monotonic()
        if now >= next_log:
          next_log = now + self.log_every_s
          logging.info('Inception features: %d images (%.1f images/s)', done,
                       done / (now - start))
    for group in pending.values():
      if group:
        self._run(np.stack(group), len(group), out)
    if not out:
      raise JaxganError('no images to compute features of')
    return {key: np.concatenate(parts) for key, parts in out.items()}
