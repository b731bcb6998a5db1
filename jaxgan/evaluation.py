"""FID and KID of a translation model's outputs, in training and for saved checkpoints.

For each direction of the task (CycleGAN: AtoB with G, BtoA with F) the source
domain's test images are translated at the training resolution and compared with the
target domain's real test images (also at that resolution): `fid_AtoB` is the FID of
G(testA) against testB. The real images' features are computed once per evaluator.
"""

import json
import logging
from pathlib import Path

import jax
import numpy as np

from jaxgan import data, images
from jaxgan.metrics import features, fid

_ENDS = {'AtoB': ('a', 'b'), 'BtoA': ('b', 'a')}


class TranslationEvaluator:

  def __init__(self, task, source, config, *, num_images: int, mesh=None):
    cfg = config.eval
    self.task = task
    self.extractor = features.Extractor(features.load_variables(cfg.weights or None),
                                        batch_size=cfg.batch_size, mesh=mesh)
    split = 'test' if source.has_split('test') else 'train'
    if split == 'train':
      logging.warning('%s has no test split: evaluating on the training images',
                      config.data.source)
    self.domains = source.domains(split)
    self.size = config.data.image_size
    self.batch_size = cfg.batch_size
    self.num_images = num_images
    self.kid = cfg.kid
    self._real: dict[str, np.ndarray] = {}
    self._generate = jax.jit(task.generate, static_argnums=1)

  def _batches(self, which: str):
    image_set = getattr(self.domains, which)
    limit = min(len(image_set), self.num_images or len(image_set))
    seen = 0
    for batch in data.eval_batches(image_set, self.batch_size, size=self.size):
      batch = batch[:limit - seen]
      seen += len(batch)
      yield batch
      if seen >= limit:
        return

  def _real_features(self, which: str) -> np.ndarray:
    if which not in self._real:
      self._real[which] = self.extractor(
          img for batch in self._batches(which) for img in images.to_uint8(batch))['pool3']
    return self._real[which]

  def __call__(self, state) -> dict[str, float]:
    results = {}
    for direction, net in self.task.directions.items():
      src, dst = _ENDS[direction]
      fake = self.extractor(
          img for batch in self._batches(src)
          for img in images.to_uint8(np.asarray(self._generate(state, net, batch))))['pool3']
      real = self._real_features(dst)
      results[f'fid_{direction}'] = fid.frechet_distance(*fid.statistics(fake),
                                                         *fid.statistics(real))
      if self.kid:
        mean, std = fid.kernel_inception_distance(fake, real)
        results[f'kid_{direction}'] = mean
        results[f'kid_{direction}_std'] = std
      results[f'num_images_{direction}'] = float(len(fake))
    return results


class BestScores:
  """The lowest FID per direction so far, kept in workdir/eval_best.json across resumes."""

  def __init__(self, workdir):
    self.path = Path(workdir) / 'eval_best.json'
    self.best = json.loads(self.path.read_text()) if self.path.is_file() else {}

  def update(self, step: int, results: dict, write: bool) -> dict[str, float]:
    for key, value in results.items():
      if key.startswith('fid_') and (key not in self.best or value < self.best[key]['value']):
        self.best[key] = {'value': value, 'step': step}
    if write:
      self.path.write_text(json.dumps(self.best, indent=2, sort_keys=True))
    return {f'best_{k}': v['value'] for k, v in self.best.items()}
