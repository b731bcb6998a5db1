"""Evaluation of a GAN's predictors, in training and for saved checkpoints.

The task's `predictors()` say what is scored (`make_evaluator`); the evaluators know no
task, network or direction name:

* a `Translator` named N (CycleGAN's AtoB with G and BtoA with F; pix2pix's one
  direction) translates its source domain's test images at the training resolution,
  and the outputs are compared with the target domain's real test images at that
  resolution: `fid_N` (and `kid_N`). When the test split is paired (aligned data,
  synthetic), each output is also scored against its own true target: `l1_N` (mean
  |G(a) - b| in the model's [-1, 1] units), `psnr_N` (dB) and `ssim_N`.
* a `Sampler` (DCGAN): `fid` (and `kid`) of N unconditional samples, drawn with a fixed
  key so that every evaluation sees the same z, against the first N real test images.

Grayscale images are replicated to RGB for the Inception network. The real images'
features are computed once per key (source, split, domain, size, channels, N, weights)
and kept in `jaxgan.metrics.feature_cache` (eval.cache_dir), so later runs and
`jaxgan.evaluate` reuse them.
"""

import json
import logging
from pathlib import Path

import jax
import numpy as np

from jaxgan import data, images
from jaxgan.errors import JaxganError
from jaxgan.metrics import feature_cache, features, feature_scores, paired
from jaxgan.models import cpu_conv
from jaxgan.tasks.base import Sampler, Translator

_CACHE_VERSION = 1  # bump when the features of the same key would change


def _rgb(batch: np.ndarray) -> np.ndarray:
  """Model pixels [N, H, W, 1|3] in [-1, 1] -> uint8 RGB."""
  u8 = images.to_uint8(batch)
  return np.repeat(u8, 3, axis=-1) if u8.shape[-1] == 1 else u8


def _source_id(config) -> str:
  """The data source as a cache key: paths made absolute; synthetic data by its seed."""
  spec = config.data.source
  kind, sep, rest = spec.partition(':')
  if sep and kind != 'tfds' and Path(rest).exists():
    return f'{kind}:{Path(rest).resolve()}'
  if spec == 'synthetic':
    return f'synthetic(seed={config.seed}, n={config.data.synthetic_size})'
  return spec


class Evaluator:
  """Scores every predictor of a task; call with a GANState or an InferenceState."""

  def __init__(self, task, source, config, *, num_images: int, mesh=None):
    cfg = config.eval
    from jaxgan.metrics import weights
    weights_path = cfg.weights or weights.default_weights_path()
    self.extractor = features.Extractor(features.load_variables(weights_path),
                                        batch_size=cfg.batch_size, mesh=mesh)
    self._weights_path = weights_path
    self.split = 'test' if source.has_split('test') else 'train'
    if self.split == 'train':
      logging.warning('%s has no test split: evaluating on the training images',
                      config.data.source)
    self.domains = source.task_domains(self.split, task.data_mode)
    self.config = config
    self.size = config.data.image_size
    self.channels = config.data.channels
    self.batch_size = cfg.batch_size
    self.num_images = num_images
    self.kid = cfg.kid
    self.cache = None if cfg.cache_dir == 'none' else feature_cache.FeatureCache(
        cfg.cache_dir or None)
    self.predictors = task.predictors()
    # Traced for the devices the model runs on: the mesh, else the default device.
    where = mesh if mesh is not None else jax.devices()[:1]
    self._jitted = {name: cpu_conv.jit_placed(p.fn, where, static_argnums=2 if
                                              isinstance(p, Sampler) else ())
                    for name, p in self.predictors.items()}
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
      compute = lambda: self._features(self._batches(which))
      if self.cache is None:
        self._real[which] = compute()
      else:
        image_set = getattr(self.domains, which)
        key = {'version': _CACHE_VERSION, 'source': _source_id(self.config),
               'split': self.split, 'domain': which, 'split_size': len(image_set),
               'num_images': self._limit(image_set), 'size': self.size,
               'channels': self.channels, 'feature': 'pool3',
               'weights': feature_cache.file_fingerprint(self._weights_path)}
        self._real[which] = self.cache.get_or_compute(key, compute)
    return self._real[which]

  def _distances(self, fake: np.ndarray, real: np.ndarray, suffix: str) -> dict:
    out = {f'fid{suffix}': feature_scores.frechet_distance(
        *feature_scores.statistics(fake), *feature_scores.statistics(real))}
    if self.kid:
      mean, std = feature_scores.kernel_inception_distance(fake, real)
      out[f'kid{suffix}'], out[f'kid{suffix}_std'] = mean, std
    out[f'num_images{suffix}'] = float(len(fake))
    return out

  def _translation(self, model, name: str, p: Translator) -> dict[str, float]:
    fakes, scores = [], {}
    targets = self._batches(p.target) if self.domains.paired else None
    for batch in self._batches(p.source):
      fake = np.asarray(self._jitted[name](model, batch))
      fakes.append(fake)
      if targets is not None:
        for key, values in paired.scores(_rgb(fake), _rgb(next(targets))).items():
          scores.setdefault(key, []).append(values)
    results = self._distances(self._features(fakes), self._real_features(p.target),
                              f'_{name}')
    for key, values in scores.items():
      results[f'{key}_{name}'] = float(np.mean(np.concatenate(values)))
    return results

  def _samples(self, model, name: str, p: Sampler) -> dict[str, float]:
    count = self._limit(self.domains.a)
    key = jax.random.PRNGKey(self.config.seed)

    def fakes():
      for start in range(0, count, self.batch_size):
        n = min(self.batch_size, count - start)
        # A fixed key per batch: every evaluation scores the same z.
        yield np.asarray(self._jitted[name](model, jax.random.fold_in(key, start),
                                            self.batch_size))[:n]

    return self._distances(self._features(fakes()), self._real_features('a'),
                           p.suffix)

  def __call__(self, model) -> dict[str, float]:
    results = {}
    for name, p in self.predictors.items():
      if isinstance(p, Translator):
        results.update(self._translation(model, name, p))
      else:
        results.update(self._samples(model, name, p))
    return results


def make_evaluator(task, source, config, *, num_images: int, mesh=None) -> Evaluator:
  """The evaluator of the task's predictors; raises JaxganError when the FID weights
  are missing (before any training starts)."""
  if not task.predictors():
    raise JaxganError(f'task {config.task} has no predictor to evaluate')
  return Evaluator(task, source, config, num_images=num_images, mesh=mesh)


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
