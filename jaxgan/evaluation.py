"""Evaluation of a GAN's outputs, in training and for saved checkpoints.

Two kinds, picked by the task's `evaluator` attribute (see `make_evaluator`):

* 'translation' (CycleGAN, pix2pix): for each direction of the task (CycleGAN: AtoB
  with G and BtoA with F; pix2pix: its one direction) the source domain's test images
  are translated at the training resolution and compared with the target domain's
  real test images at that resolution: `fid_AtoB` is the FID of G(testA) against
  testB (and `kid_AtoB`). When the test split is paired (aligned data, synthetic), each
  output is also scored against its own true target: `l1_AtoB` (mean |G(a) - b| in
  the model's [-1, 1] units), `psnr_AtoB` (dB) and `ssim_AtoB`, means over the images.
* 'samples' (DCGAN): `fid` (and `kid`) of N unconditional samples, drawn with a fixed
  key so that every evaluation sees the same z, against the first N real test images.

Grayscale images are replicated to RGB for the Inception network. The real images'
features are computed once per evaluator.
"""

import json
import logging
from pathlib import Path

import jax
import numpy as np

from jaxgan import data, images
from jaxgan.errors import JaxganError
from jaxgan.metrics import features, fid, paired

_ENDS = {'AtoB': ('a', 'b'), 'BtoA': ('b', 'a')}


def _rgb(batch: np.ndarray) -> np.ndarray:
  """Model pixels [N, H, W, 1|3] in [-1, 1] -> uint8 RGB."""
  u8 = images.to_uint8(batch)
  return np.repeat(u8, 3, axis=-1) if u8.shape[-1] == 1 else u8


class _Evaluator:
  """What both kinds share: the Inception extractor, the test split, FID/KID."""

  def __init__(self, task, source, config, *, num_images: int, mesh=None):
    cfg = config.eval
    self.task = task
    self.extractor = features.Extractor(features.load_variables(cfg.weights or None),
                                        batch_size=cfg.batch_size, mesh=mesh)
    split = 'test' if source.has_split('test') else 'train'
    if split == 'train':
      logging.warning('%s has no test split: evaluating on the training images',
                      config.data.source)
    self.domains = source.task_domains(split, task.data_mode)
    self.size = config.data.image_size
    self.channels = config.data.channels
    self.batch_size = cfg.batch_size
    self.num_images = num_images
    self.kid = cfg.kid
    self._real: dict[str, np.ndarray] = {}

  def _limit(self, image_set) -> int:
    return min(len(image_set), self.num_images or len(image_set))

  def _batches(self, which: str):
    """The first `num_images` test images of domain `which`, in batches."""
    image_set = getattr(self.domains, which)
    limit, seen = self._limit(image_set), 0
    for batch in data.eval_batches(image_set, self.batch_size, size=self.size,
                                   channels=self.channels):
      batch = batch[:limit - seen]
      seen += len(batch)
      yield batch
      if seen >= limit:
        return

  def _features(self, batches) -> np.ndarray:
    return self.extractor(img for batch in batches for img in _rgb(batch))['pool3']

  def _real_features(self, which: str) -> np.ndarray:
    if which not in self._real:
      self._real[which] = self._features(self._batches(which))
    return self._real[which]

  def _distances(self, fake: np.ndarray, real: np.ndarray, suffix: str) -> dict:
    out = {f'fid{suffix}': fid.frechet_distance(*fid.statistics(fake),
                                                *fid.statistics(real))}
    if self.kid:
      mean, std = fid.kernel_inception_distance(fake, real)
      out[f'kid{suffix}'], out[f'kid{suffix}_std'] = mean, std
    out[f'num_images{suffix}'] = float(len(fake))
    return out


class TranslationEvaluator(_Evaluator):

  def __init__(self, task, source, config, *, num_images: int, mesh=None):
    super().__init__(task, source, config, num_images=num_images, mesh=mesh)
    self._generate = jax.jit(task.generate, static_argnums=1)

  def __call__(self, state) -> dict[str, float]:
    results = {}
    for direction, net in self.task.directions.items():
      src, dst = _ENDS[direction]
      fakes, scores = [], {}
      targets = self._batches(dst) if self.domains.paired else None
      for batch in self._batches(src):
        fake = np.asarray(self._generate(state, net, batch))
        fakes.append(fake)
        if targets is not None:
          for key, values in paired.scores(_rgb(fake), _rgb(next(targets))).items():
            scores.setdefault(key, []).append(values)
      results.update(self._distances(self._features(fakes), self._real_features(dst),
                                     f'_{direction}'))
      for key, values in scores.items():
        results[f'{key}_{direction}'] = float(np.mean(np.concatenate(values)))
    return results


class SampleEvaluator(_Evaluator):

  def __init__(self, task, source, config, *, num_images: int, mesh=None):
    super().__init__(task, source, config, num_images=num_images, mesh=mesh)
    self.count = self._limit(self.domains.a)
    self.seed = config.seed
    self._sample = jax.jit(task.generate_samples, static_argnums=2)

  def _fakes(self, state):
    key = jax.random.PRNGKey(self.seed)
    for start in range(0, self.count, self.batch_size):
      n = min(self.batch_size, self.count - start)
      # A fixed key per batch: every evaluation scores the same z.
      yield np.asarray(self._sample(state, jax.random.fold_in(key, start),
                                    self.batch_size))[:n]

  def __call__(self, state) -> dict[str, float]:
    return self._distances(self._features(self._fakes(state)),
                           self._real_features('a'), '')


EVALUATORS = {'translation': TranslationEvaluator, 'samples': SampleEvaluator}


def make_evaluator(task, source, config, *, num_images: int, mesh=None):
  """The evaluator of the task's kind; raises JaxganError when the FID weights are
  missing (before any training starts)."""
  if task.evaluator not in EVALUATORS:
    raise JaxganError(f'unknown evaluator {task.evaluator!r} of task {config.task}')
  return EVALUATORS[task.evaluator](task, source, config, num_images=num_images,
                                    mesh=mesh)


class BestScores:
  """The lowest FID per key so far, kept in workdir/eval_best.json across resumes."""

  def __init__(self, workdir):
    self.path = Path(workdir) / 'eval_best.json'
    self.best = json.loads(self.path.read_text()) if self.path.is_file() else {}

  def update(self, step: int, results: dict, write: bool) -> dict[str, float]:
    for key, value in results.items():
      is_fid = key == 'fid' or key.startswith('fid_')
      if is_fid and (key not in self.best or value < self.best[key]['value']):
        self.best[key] = {'value': value, 'step': step}
    if write:
      self.path.write_text(json.dumps(self.best, indent=2, sort_keys=True))
    return {f'best_{k}': v['value'] for k, v in self.best.items()}
