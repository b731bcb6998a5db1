"""Translate images with a trained generator:
`python -m jaxgan.translate --workdir DIR --direction AtoB|BtoA --input PATH
--output DIR [--step N] [--style-seed K] [--num-styles N] [--style-ref IMAGE]`.

Restores the latest (or given) checkpoint of the run in DIR and translates one image
or every image in a folder at its own resolution: the generators are fully
convolutional, so each image is padded (reflect) to a multiple of the generator's
stride, translated and cropped back. Any PIL mode (L, RGBA, 16-bit, ...) is read as
RGB; output PNGs keep the input stems. Unreadable files are skipped and counted.
Nothing is written when an output would replace one of the inputs or when two
inputs share a stem (a.jpg and a.png would both become a.png): the command stops
first with the list.

A style-controlled translator (MUNIT) also takes a style: `--style-seed K` draws one
from the prior with `jax.random.PRNGKey(K)` (the same style for every input),
`--num-styles N` draws N from that key and writes N outputs per input
(`STEM_style00.png`, ...; the same N styles for every input, deterministic per seed),
and `--style-ref IMAGE` takes the style of an image of the target domain
(example-guided translation). Without them it uses its default fixed style.
"""

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from jaxgan import cli, images
from jaxgan.errors import JaxganError


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m jaxgan.translate',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', required=True, help='a jaxgan training workdir')
  parser.add_argument('--direction', required=True, help='AtoB or BtoA')
  parser.add_argument('--input', required=True, help='an image file or a folder of them')
  parser.add_argument('--output', required=True, help='folder for the translated PNGs')
  parser.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  parser.add_argument('--style-seed', type=int, default=None, metavar='K',
                      help='style-controlled models: a random style from seed K')
  parser.add_argument('--num-styles', type=int, default=None, metavar='N',
                      help='style-controlled models: N random styles per input (from '
                      '--style-seed, default 0), one file each')
  parser.add_argument('--style-ref', default=None, metavar='IMAGE',
                      help="style-controlled models: the style of this image of the "
                      "target domain")
  args = parser.parse_args(argv)
  if args.style_ref is not None and (args.style_seed is not None or args.num_styles):
    raise JaxganError('--style-ref takes the style of an image; it cannot be combined '
                      'with --style-seed or --num-styles')
  if args.num_styles is not None and args.num_styles < 1:
    raise JaxganError(f'--num-styles must be >= 1, got {args.num_styles}')
  if args.style_seed is not None and args.style_seed < 0:
    raise JaxganError(f'--style-seed must be >= 0, got {args.style_seed}')
  return args


def list_inputs(path: Path) -> list[Path]:
  if path.is_file():
    return [path]
  if not path.exists():
    raise JaxganError(f'input {path} does not exist')
  return images.list_images(path)


def output_paths(inputs: list[Path], out: Path, suffixes=('',)) -> list[list[Path]]:
  """out/STEM{suffix}.png for each input and suffix; a JaxganError listing every
  collision (two inputs, one output) and every input an output would overwrite."""
  per_input = [[out / f'{path.stem}{suffix}.png' for suffix in suffixes]
               for path in inputs]
  targets = [t for ts in per_input for t in ts]
  by_target = {}
  for path, ts in zip(inputs, per_input):
    for target in ts:
      by_target.setdefault(target, []).append(path)
  problems = [f"{', '.join(p.name for p in paths)} -> {t.name}"
              for t, paths in by_target.items() if len(paths) > 1]
  if problems:
    raise JaxganError(f'{len(problems)} output name(s) would be shared by several inputs '
                      f'({"; ".join(problems[:5])}{"; ..." if len(problems) > 5 else ""}); '
                      'rename the inputs or translate them into separate folders')
  resolved = {path.resolve() for path in inputs}
  clobbered = [t for t in targets if t.resolve() in resolved]
  if clobbered:
    names = ', '.join(str(t) for t in clobbered[:5])
    raise JaxganError(f'--output would overwrite {len(clobbered)} input image(s) '
                      f'({names}{", ..." if len(clobbered) > 5 else ""}); choose another '
                      'output folder')
  return per_input


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
  """Pads HWC `x` at the bottom/right to multiples of `multiple` (reflect where the
  image is large enough, else edge)."""
  h, w = x.shape[:2]
  ph, pw = (-h) % multiple, (-w) % multiple
  mode = 'reflect' if ph < h and pw < w else 'edge'
  return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode=mode)


def pick_translator(task, direction: str | None):
  """(direction, its `Translator`) of `task`; direction None picks the first that
  takes a style, else the first. A one-line error for a task without translators or
  an unknown direction (`translate`, `sample --style-grid` and `export` use it)."""
  from jaxgan.tasks.base import Translator
  translators = {n: p for n, p in task.predictors().items() if isinstance(p, Translator)}
  if not translators:
    raise JaxganError(f'task {task.config.task} does not translate images (it has no '
                      'image-to-image generator)')
  if direction is None:
    styled = [n for n, p in translators.items() if p.style is not None]
    direction = (styled or list(translators))[0]
  if direction not in translators:
    raise JaxganError(f"direction '{direction}' is not one of "
                      f"{', '.join(translators)} for task {task.config.task}")
  return direction, translators[direction]


class Generator:
  """A restored translator on uint8 HWC images: `__call__(rgb, styles=None)` ->
  one uint8 HWC image per style (or one with the translator's own fixed style); for
  a style-controlled translator, `random_styles(seed, n)` and `style_of(rgb)`.
  `style_for`: the flag that needs a style input (refused without one); with it,
  direction None picks the first translator that takes a style."""

  def __init__(self, workdir: Path, direction: str | None, step,
               style_for: str | None = None):
    import jax
    from jaxgan import runs
    from jaxgan.models import cpu_conv
    config, task, model, self.step = runs.restore_inference(workdir, step)
    direction, predictor = pick_translator(task, direction)
    self.task, self.model, self.predictor = task, model, predictor
    self.direction, self.style = direction, predictor.style
    if style_for:
      self.require_style(style_for)
    # Traced for the devices the restored weights live on (CPU: its conv formulations).
    where = jax.tree.leaves(model)[0].sharding
    self._apply = cpu_conv.jit_placed(predictor.fn, where)
    if self.style is not None:
      self._styled = cpu_conv.jit_placed(self.style.apply, where)
      self._encode = cpu_conv.jit_placed(self.style.encode, where)
      self._random = jax.jit(self.style.random, static_argnums=1)

  def require_style(self, what: str) -> None:
    if self.style is None:
      raise JaxganError(f'{what} needs a style-controlled translator; task '
                        f'{self.task.config.task} translates without a style input')

  def _input(self, rgb: np.ndarray) -> np.ndarray:
    """uint8 HWC -> the model's [1, H', W', C] in [-1, 1], padded to its multiple."""
    if self.task.channels == 1:  # a grayscale model: ITU-R 601 luma, as PIL's 'L'
      rgb = np.asarray(Image.fromarray(rgb).convert('L'))[..., None]
    x = pad_to_multiple(rgb.astype(np.float32) / 127.5 - 1.0,
                        self.predictor.size_multiple)
    return x[None]

  def random_styles(self, seed: int, n: int) -> np.ndarray:
    import jax
    self.require_style('a random style')
    return np.asarray(self._random(jax.random.PRNGKey(seed), n))

  def style_of(self, rgb: np.ndarray) -> np.ndarray:
    """The style [1, style_dim] of an image of the target domain."""
    self.require_style('--style-ref')
    return np.asarray(self._encode(self.model, self._input(rgb)))

  def __call__(self, rgb: np.ndarray, styles=None) -> list[np.ndarray]:
    h, w = rgb.shape[:2]
    x = self._input(rgb)
    if styles is None:
      outs = [np.asarray(self._apply(self.model, x))[0]]
    else:
      xs = np.repeat(x, len(styles), axis=0)
      outs = list(np.asarray(self._styled(self.model, xs, np.asarray(styles))))
    result = []
    for y in outs:
      y = images.to_uint8(y[:h, :w])
      result.append(np.repeat(y, 3, axis=-1) if y.shape[-1] == 1 else y)
    return result


def _styles(generator: Generator, args):
  """The styles the flags ask for, [n, style_dim] (None: the translator's own)."""
  if args.style_ref is not None:
    return generator.style_of(images.read_rgb(args.style_ref))
  if args.num_styles is not None:
    seed = 0 if args.style_seed is None else args.style_seed
    return generator.random_styles(seed, args.num_styles)
  if args.style_seed is not None:
    return generator.random_styles(args.style_seed, 1)
  return None


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  inputs = list_inputs(Path(args.input))
  out = Path(args.output)
  if out.exists() and not out.is_dir():
    raise JaxganError(f'--output {out} exists and is not a folder')
  suffixes = (tuple(f'_style{j:02d}' for j in range(args.num_styles))
              if args.num_styles else ('',))
  targets = output_paths(inputs, out, suffixes)
  flags = [f for f, v in (('--style-seed', args.style_seed), ('--num-styles',
                                                              args.num_styles),
                           ('--style-ref', args.style_ref)) if v is not None]
  generator = Generator(Path(args.workdir), args.direction, args.step,
                        style_for=' and '.join(flags) or None)
  styles = _styles(generator, args)
  out.mkdir(parents=True, exist_ok=True)
  skipped = []
  for path, paths in zip(inputs, targets):
    try:
      rgb = images.read_rgb(path)
    except JaxganError as e:
      skipped.append(path.name)
      logging.warning('skipped: %s', e)
      continue
    for target, result in zip(paths, generator(rgb, styles)):
      images.write_png(target, result)
  done = len(inputs) - len(skipped)
  styled = f' in {len(suffixes)} style(s) each' if args.num_styles else ''
  print(f'translated {done} image(s) {args.direction}{styled} with the step-'
        f'{generator.step} checkpoint into {out}' + (
            f'; skipped {len(skipped)} unreadable: {", ".join(skipped[:5])}'
            if skipped else ''))
  if not done:
    raise JaxganError(f'no readable image in {args.input}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
