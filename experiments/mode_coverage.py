"""Digit coverage of an MNIST GAN run, checkpoint by checkpoint, by the MNIST classifier.

  python experiments/mode_coverage.py --workdir W [--steps all|S1,S2,...] [--num 1000]
      [--seed 0] [--classifier PATH] [--data ../shared/datasets/mnist] [--json PATH]

For each checkpoint of the run in W (a task with a 'samples' predictor generating
32x32x1 images: dcgan:demo, stylegan:demo), `--num` samples are drawn from one fixed
z set, z = N(0, I) from `jax.random.PRNGKey(--seed)`, the same z at every checkpoint,
through the task's own `decode` (what `python -m jaxgan.sample` and evaluation use:
the EMA generator where the task keeps one, the config's truncation and noise mode).
The classifier of `experiments/mnist_classifier.py` labels them, and a markdown table
gives per checkpoint: the entropy of the class histogram (nats; ln 10 = 2.303 at
most), the classes holding more than 5% of the samples, the across-sample pixel std,
and the share of z whose class changed since the previous checkpoint listed (mode
hopping). A last row scores the first `--num` real test digits the same way, as the
reference (all 10k: entropy 2.301, 10 classes, pixel std 0.185; the first 1000:
2.294, 10, 0.177). Without --workdir only that row is printed. `--json PATH` writes
the rows (with each row's class counts) as JSON too.
"""

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np

import mnist_classifier as mc
from jaxgan import cli
from jaxgan.errors import JaxganError

CHUNK = 500  # samples per generator call (one compiled shape, bounded memory)
MAX_REAL = 10000  # MNIST's test split


def parse_steps(text: str, available: list[int]) -> list[int]:
  """'all' -> every available step; 'S1,S2,...' -> those, each of which must exist."""
  if text == 'all':
    return sorted(available)
  try:
    steps = sorted({int(s) for s in text.split(',') if s.strip()})
  except ValueError:
    raise JaxganError(f"--steps {text!r}: expected 'all' or steps like '500,1000'"
                      ) from None
  missing = [s for s in steps if s not in available]
  if not steps or missing:
    raise JaxganError(f'--steps {text!r}: no checkpoint at '
                      f'{", ".join(map(str, missing)) or "(none given)"}; available: '
                      f'{", ".join(map(str, sorted(available)))}')
  return steps


def checkpoint_steps(workdir: Path) -> list[int]:
  """The steps of the checkpoints in `workdir`; a one-line error if there are none."""
  from jaxgan import checkpointing
  from jaxgan.workdir import read_config
  read_config(workdir)  # not a workdir: its own one-line error
  directory = workdir / 'checkpoints'
  steps = []
  if directory.is_dir():
    ckpt = checkpointing.Checkpoints(directory, read_only=True)
    try:
      steps = ckpt.all_steps()
    finally:
      ckpt.close()
  if not steps:
    raise JaxganError(f'no checkpoint in {directory}')
  return sorted(steps)


def check_run_shape(config, workdir) -> None:
  """A one-line error unless the run generates [N, 32, 32, 1] images."""
  size, channels = config.data.image_size, config.data.channels
  if (size, channels) != (mc.INPUT_SIZE, 1):
    raise JaxganError(f'{workdir} generates {size}x{size}x{channels} images; the MNIST '
                      f'classifier needs {mc.INPUT_SIZE}x{mc.INPUT_SIZE}x1')


class CheckpointSampler:
  """Samples of one z set from any checkpoint of a run, through the task's 'samples'
  predictor's `decode`, jitted once for all the run's checkpoints."""

  def __init__(self, workdir: Path, num: int, seed: int):
    from jaxgan.workdir import read_config
    self.workdir = Path(workdir)
    check_run_shape(read_config(self.workdir), self.workdir)
    self.num, self.seed = num, seed
    self._decode = self._z = None

  def __call__(self, step: int) -> np.ndarray:
    """float32 [num, 32, 32, 1] in [-1, 1]: the step-`step` checkpoint's samples."""
    from jaxgan import runs, sample
    from jaxgan.tasks.base import Sampler
    config, task, model, _ = runs.restore_inference(self.workdir, step)
    predictor = task.predictors().get('samples')
    if not isinstance(predictor, Sampler):
      raise JaxganError(f'task {config.task} of {self.workdir} has no "samples" '
                        'predictor (it does not generate images from noise)')
    if self._decode is None:
      self._decode = sample._jit(predictor.decode, model)  # pylint: disable=protected-access
      self._z = np.asarray(jax.random.normal(jax.random.PRNGKey(self.seed),
                                             (self.num, predictor.latent_dim)))
    out, chunk = [], min(CHUNK, self.num)
    for start in range(0, self.num, chunk):
      z = self._z[start:start + chunk]
      padded = np.concatenate([z, np.zeros((chunk - len(z), z.shape[1]), z.dtype)])
      out.append(np.asarray(self._decode(model, padded))[:len(z)])
    return mc.check_images(np.concatenate(out), f'samples of step {step} of '
                           f'{self.workdir}')


def row(name, scores: dict, labels: np.ndarray, hop: float | None) -> dict:
  return {'step': name, 'num': len(labels), **scores, 'hop_share': hop,
          'counts': mc.class_counts(labels).tolist()}


def coverage(params, sampler: CheckpointSampler, steps: list[int], log=print) -> list[dict]:
  """One row per step: entropy, classes > 5%, pixel std, hop share vs the previous."""
  rows, previous = [], None
  for step in steps:
    images = sampler(step)
    scores, labels = mc.diversity(params, images, f'samples of step {step}')
    hop = None if previous is None else mc.hop_share(previous, labels)
    rows.append(row(step, scores, labels, hop))
    previous = labels
    log(f'scored step {step}')
  return rows


def reference(params, data: str, num: int) -> dict:
  """The row of the first `num` real test digits."""
  images, _ = mc.mnist_images(data, 'test')
  images = images[:num]
  scores, labels = mc.diversity(params, images, f'MNIST test digits in {data}')
  return row('real', scores, labels, None)


def table(rows: list[dict]) -> str:
  """The rows as a markdown table."""
  lines = ['| step | N | entropy (nats) | classes > 5% | pixel std | hop share |',
           '|---:|---:|---:|---:|---:|---:|']
  for r in rows:
    hop = '-' if r['hop_share'] is None else f'{r["hop_share"]:.3f}'
    name = 'real MNIST (test)' if r['step'] == 'real' else str(r['step'])
    lines.append(f'| {name} | {r["num"]} | {r["entropy"]:.3f} | {r["classes"]} | '
                 f'{r["pixel_std"]:.4f} | {hop} |')
  return '\n'.join(lines)


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', default=None,
                 help='a dcgan/stylegan workdir (none: only the real-digit row)')
  p.add_argument('--steps', default='all', help="'all' or e.g. '500,1000'")
  p.add_argument('--num', type=int, default=1000, help='samples per checkpoint')
  p.add_argument('--seed', type=int, default=0, help='seeds the fixed z set')
  p.add_argument('--classifier', default=None,
                 help=f'the weights file (default {mc.default_path()})')
  p.add_argument('--data', default=mc.DEFAULT_DATA,
                 help="MNIST's IDX files, for the real-digit row")
  p.add_argument('--json', default=None, help='also write the rows to this file')
  args = p.parse_args(argv)
  if not 1 <= args.num <= 100000:
    raise JaxganError(f'--num must be in [1, 100000], got {args.num}')
  if args.seed < 0:
    raise JaxganError(f'--seed must be >= 0, got {args.seed}')
  return args


def main(argv):
  args = parse_args(argv)
  params, meta = mc.load(args.classifier)
  rows = []
  if args.workdir:
    workdir = Path(args.workdir)
    steps = parse_steps(args.steps, checkpoint_steps(workdir))
    sampler = CheckpointSampler(workdir, args.num, args.seed)
    rows = coverage(params, sampler, steps,
                    log=lambda line: print(line, file=sys.stderr, flush=True))
  rows.append(reference(params, args.data, min(args.num, MAX_REAL)))
  accuracy = f'classifier test accuracy {100 * meta["test_accuracy"]:.2f}%'
  title = (f'Digit coverage of {args.workdir} ({args.num} samples per checkpoint, z '
           f'seed {args.seed}; {accuracy})' if args.workdir else
           f'Real MNIST test digits ({accuracy})')
  print(f'{title}\n\n{table(rows)}')
  if args.json:
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(
        {'workdir': args.workdir, 'num': args.num, 'seed': args.seed,
         'classifier': str(Path(args.classifier) if args.classifier else mc.default_path()),
         'classifier_meta': meta, 'rows': rows}, indent=2) + '\n')


if __name__ == '__main__':
  sys.exit(cli.run(main))
