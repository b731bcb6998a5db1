"""Translate images with a trained generator:
`python -m jaxgan.translate --workdir DIR --direction AtoB|BtoA --input PATH
--output DIR [--step N]`.

Restores the latest (or given) checkpoint of the run in DIR and translates one image
or every image in a folder at its own resolution: the generators are fully
convolutional, so each image is padded (reflect) to a multiple of the generator's
stride, translated and cropped back. Any PIL mode (L, RGBA, 16-bit, ...) is read as
RGB; output PNGs keep the input stems. Unreadable files are skipped and counted.
Nothing is written when an output would replace one of the inputs or when two
inputs share a stem (a.jpg and a.png would both become a.png): the command stops
first with the list.
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
  return parser.parse_args(argv)


def list_inputs(path: Path) -> list[Path]:
  if path.is_file():
    return [path]
  if not path.exists():
    raise JaxganError(f'input {path} does not exist')
  return images.list_images(path)


def output_paths(inputs: list[Path], out: Path) -> list[Path]:
  """out/STEM.png for each input; a JaxganError listing every collision (two inputs,
  one output) and every input an output would overwrite."""
  targets = [out / f'{path.stem}.png' for path in inputs]
  by_target = {}
  for path, target in zip(inputs, targets):
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
  return targets


def pad_to_multiple(x: np.ndarray, multiple: int) -> np.ndarray:
  """Pads HWC `x` at the bottom/right to multiples of `multiple` (reflect where the
  image is large enough, else edge)."""
  h, w = x.shape[:2]
  ph, pw = (-h) % multiple, (-w) % multiple
  mode = 'reflect' if ph < h and pw < w else 'edge'
  return np.pad(x, ((0, ph), (0, pw), (0, 0)), mode=mode)


def load_generator(workdir: Path, direction: str, step):
  """(function uint8 HWC -> uint8 HWC, restored step) for the run in `workdir`."""
  import jax
  from jaxgan import runs
  from jaxgan.models import cpu_conv
  from jaxgan.tasks.base import Translator
  config, task, model, step = runs.restore_inference(workdir, step)
  translators = {n: p for n, p in task.predictors().items() if isinstance(p, Translator)}
  if not translators:
    raise JaxganError(f'task {config.task} does not translate images (it has no '
                      'image-to-image generator)')
  if direction not in translators:
    raise JaxganError(f"direction '{direction}' is not one of "
                      f"{', '.join(translators)} for task {config.task}")
  predictor = translators[direction]
  # Traced for the devices the restored weights live on (CPU: its conv formulations).
  apply = cpu_conv.jit_placed(predictor.fn, jax.tree.leaves(model)[0].sharding)
  multiple = predictor.size_multiple

  def translate(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if task.channels == 1:  # a grayscale model: ITU-R 601 luma, as PIL's 'L'
      rgb = np.asarray(Image.fromarray(rgb).convert('L'))[..., None]
    x = pad_to_multiple(rgb.astype(np.float32) / 127.5 - 1.0, multiple)
    y = images.to_uint8(np.asarray(apply(model, x[None]))[0, :h, :w])
    return np.repeat(y, 3, axis=-1) if y.shape[-1] == 1 else y

  return translate, step


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  inputs = list_inputs(Path(args.input))
  out = Path(args.output)
  if out.exists() and not out.is_dir():
    raise JaxganError(f'--output {out} exists and is not a folder')
  targets = output_paths(inputs, out)
  translate, step = load_generator(Path(args.workdir), args.direction, args.step)
  out.mkdir(parents=True, exist_ok=True)
  skipped = []
  for path, target in zip(inputs, targets):
    try:
      rgb = images.read_rgb(path)
    except JaxganError as e:
      skipped.append(path.name)
      logging.warning('skipped: %s', e)
      continue
    images.write_png(target, translate(rgb))
  done = len(inputs) - len(skipped)
  print(f'translated {done} image(s) {args.direction} with the step-{step} checkpoint '
        f'into {out}' + (f'; skipped {len(skipped)} unreadable: '
                         f'{", ".join(skipped[:5])}' if skipped else ''))
  if not done:
    raise JaxganError(f'no readable image in {args.input}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
