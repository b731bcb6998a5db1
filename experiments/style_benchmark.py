"""Style-controlled translation measured against ground truth on coloured MNIST
(`colour_mnist:PATH`, issue 19):

  python experiments/style_benchmark.py --workdir runs/munit_demo \
      [--cyclegan-workdir runs/cyclegan_cmnist] [--num 500] [--fid]

On the first N test digits a (gray) and the coloured test digits b (each in a palette
(fg, bg) that `jaxgan.data.colour_mnist.palettes` gives exactly), it prints:

* example-guided error: MAE (pixels in [0, 1]) between G(a, style(b_ref)) and the exact
  answer colourise(a, fg_ref, bg_ref), b_ref another test digit's coloured image; the
  same for a CycleGAN trained on the same data (which cannot follow a reference: its
  G(a) against the same answers), and for the mean-palette answer (the training
  palettes' mean fg and bg: what a model that ignores the reference does at best in
  the mean);
* content: MAE between F(b) (its channel mean) and b's gray digit;
* random-style diversity: the palettes of G(a, s) for s from the prior, fitted per
  output by least squares on a (`colour_mnist.fit_palettes`), against the real test
  palettes: Fréchet distance in 6-D (fg, bg), and the fit's RMS residual (~0 for a
  cleanly coloured digit; the real images' residual, from uint8 rounding and
  resizing, is printed beside it);
* with --fid: FID and KID of the random-style outputs against the real coloured test
  digits (the project's FID network; needs the weights, see `jaxgan.metrics.weights`).
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

from jaxgan import data, runs
from jaxgan.data import colour_mnist
from jaxgan.errors import JaxganError
from jaxgan.metrics import feature_scores
from jaxgan.models import cpu_conv
from jaxgan.tasks.base import Translator


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='a style translator trained on '
                 'colour_mnist:PATH (e.g. munit:demo)')
  p.add_argument('--cyclegan-workdir', help='a CycleGAN trained on the same data')
  p.add_argument('--num', type=int, default=500, help='test digits')
  p.add_argument('--batch', type=int, default=50)
  p.add_argument('--fid', action='store_true', help='also FID/KID of random styles')
  return p.parse_args(argv)


def _translators(workdir):
  config, task, model, step = runs.restore_inference(workdir)
  if not config.data.source.startswith('colour_mnist:'):
    raise JaxganError(f'{workdir} was trained on {config.data.source}, not '
                      'colour_mnist:PATH: there is no ground truth to compare with')
  where = jax.tree.leaves(model)[0].sharding
  found = {n: p for n, p in task.predictors().items() if isinstance(p, Translator)}
  return config, model, step, found, where


def _batched(fn, batch, *arrays):
  """fn over the leading axis of `arrays` in chunks of `batch`, outputs in [0, 1]."""
  n = len(arrays[0])
  return np.concatenate([(np.asarray(fn(*(a[i:i + batch] for a in arrays))) + 1) / 2
                         for i in range(0, n, batch)])


def main(argv):
  args = parse_args(argv)
  weights_path = None
  if args.fid:  # found (or refused) before any work
    from jaxgan.metrics import weights
    weights_path = weights.default_weights_path()
  config, model, step, found, where = _translators(Path(args.workdir))
  ab, ba = found['AtoB'], found['BtoA']
  if ab.style is None:
    raise JaxganError(f'{args.workdir}: task {config.task} has no style input')
  source = runs.open_source(config)
  test = source.domains('test')
  n = min(args.num, len(test.b))
  d = config.data
  real = data.fixed_batch(test, n, load_size=d.load_size, image_size=d.image_size,
                          channels=3)
  a, b = real['a'], real['b']
  gray = ((a[..., 0] + 1) / 2).astype(np.float64)     # the test digit i, in [0, 1]
  fg, bg = colour_mnist.palettes(config.seed, 'test', len(test.b))
  fg, bg = fg[:n], bg[:n]
  ref = np.roll(np.arange(n), 1)                       # a_i takes b_{i-1}'s style
  truth = colour_mnist.colourise(gray, fg[ref], bg[ref])

  encode = cpu_conv.jit_placed(ab.style.encode, where)
  apply = cpu_conv.jit_placed(ab.style.apply, where)
  styles = np.concatenate([np.asarray(encode(model, b[i:i + args.batch]))
                           for i in range(0, n, args.batch)])
  guided = _batched(lambda x, s: apply(model, x, s), args.batch, a, styles[ref])
  rows = [('example-guided MAE, style translator', np.abs(guided - truth).mean())]
  train_fg, train_bg = colour_mnist.palettes(config.seed, 'train',
                                             len(source.domains('train').b))
  mean_answer = colour_mnist.colourise(gray, np.broadcast_to(train_fg.mean(0), fg.shape),
                                       np.broadcast_to(train_bg.mean(0), bg.shape))
  rows.append(('example-guided MAE, mean palette', np.abs(mean_answer - truth).mean()))
  if args.cyclegan_workdir:
    c2, model2, step2, found2, where2 = _translators(Path(args.cyclegan_workdir))
    if (c2.data.source, c2.seed) != (config.data.source, config.seed):
      raise JaxganError('the CycleGAN run was trained on other data ('
                        f'{c2.data.source}, seed {c2.seed})')
    fn = cpu_conv.jit_placed(found2['AtoB'].fn, where2)
    plain = _batched(lambda x: fn(model2, x), args.batch, a)
    rows.append((f'example-guided MAE, CycleGAN (step {step2})',
                 np.abs(plain - truth).mean()))

  back = cpu_conv.jit_placed(ba.fn, where)
  content = _batched(lambda y: back(model, y), args.batch, b).mean(axis=-1)
  rows.append(('content MAE, F(b) vs its gray digit', np.abs(content - gray).mean()))

  random = ab.style.random(jax.random.PRNGKey(config.seed + 1), n)
  styled = _batched(lambda x, s: apply(model, x, s), args.batch, a, np.asarray(random))
  got_fg, got_bg, residual = colour_mnist.fit_palettes(gray, styled)
  _, _, real_residual = colour_mnist.fit_palettes(gray, (b + 1) / 2)
  fitted = np.concatenate([got_fg, got_bg], axis=1)
  real_palettes = np.concatenate([fg, bg], axis=1)
  rows.append(('random styles: palette Fréchet distance (6-D)',
               feature_scores.frechet_distance(*feature_scores.statistics(fitted),
                                               *feature_scores.statistics(real_palettes))))
  rows.append(('random styles: palette fit RMS residual', residual.mean()))
  rows.append(('real coloured digits: palette fit RMS residual', real_residual.mean()))
  rows.append(('random styles: std of fitted fg over outputs', got_fg.std(0).mean()))
  rows.append(('real palettes: std of fg', fg.std(0).mean()))
  if args.fid:
    from jaxgan.metrics import features
    extractor = features.Extractor(features.load_variables(weights_path),
                                   batch_size=args.batch)
    to_uint8 = lambda x: np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)
    fake = extractor(iter(to_uint8(styled)))['pool3']
    true = extractor(iter(to_uint8((b + 1) / 2)))['pool3']
    rows.append(('random styles: FID vs real coloured digits', feature_scores.frechet_distance(
        *feature_scores.statistics(fake), *feature_scores.statistics(true))))
    rows.append(('random styles: KID vs real coloured digits',
                 feature_scores.kernel_inception_distance(fake, true)[0]))

  print(f'{args.workdir} (step {step}), {n} test digits, {d.image_size}²')
  print('| measure | value |\n|---|---|')
  for name, value in rows:
    print(f'| {name} | {value:.4f} |')


if __name__ == '__main__':
  from jaxgan import cli
  sys.exit(cli.run(main, sys.argv[1:]))
