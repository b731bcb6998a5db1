"""Images from an unconditional GAN's checkpoint (StyleGAN, DCGAN):
`python -m jaxgan.sample --workdir DIR --seeds 0-63 | --latents Z.npy [--psi 0.7]
[--truncation-cutoff N] [--noise-mode const|random|none] --output grid.png|DIR/
[--step N]`, or the style-mixing
figure with `--style-mix ROW_SEEDS COL_SEEDS [--mix-layer K]`; and the style grid of
a style-controlled translator (MUNIT) with `--style-grid INPUTS [--num-styles 8]
[--style-seed K] [--interpolate] [--direction AtoB]`.

Seed s draws z = N(0, I) from `jax.random.PRNGKey(s)`, so an image depends only on
the checkpoint and its seed (not on which other seeds are drawn). `--latents Z.npy`
gives the z instead, one per row ([n, latent_dim], e.g. the z a reference model was
run with). `--output` ending in `/` (or an existing folder) writes one PNG per seed
(`seed0007.png`) or latent row (`latent0000.png`, ...: sorted names give the rows'
order); otherwise one grid, in that order. `--noise-mode const|random|none` sets
StyleGAN's noise (default: the config's model.noise_mode): 'const' is the fixed noise
(an imported snapshot's own noise_const buffers), 'random' is drawn with the config's
seed. The EMA generator is used when the run keeps one. Truncation (`--psi`,
`--truncation-cutoff`) and style mixing need a style-based generator (StyleGAN).

Style mixing: row i of the figure takes its coarse styles (layers below K, default
num_ws // 2) from ROW_SEEDS[i] and its fine styles from each column's seed; the
top row shows the column seeds' own images, the left column the row seeds'.

Style grid: one row per input image (a file or the first `--max-rows` images of a
folder, resized to the training resolution), its first column the input, then one
column per style: `--num-styles` random styles drawn with `PRNGKey(--style-seed)`,
the same style down a column; with `--interpolate` the columns go linearly from the
first of those styles to the second (a style-interpolation strip).
"""

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from jaxgan import cli, images
from jaxgan.errors import JaxganError


def parse_seeds(text: str) -> list[int]:
  """'0-3,7' -> [0, 1, 2, 3, 7]."""
  seeds = []
  try:
    for part in filter(None, text.split(',')):
      lo, sep, hi = part.partition('-')
      seeds += list(range(int(lo), int(hi) + 1)) if sep else [int(lo)]
  except ValueError:
    raise JaxganError(f"bad seeds {text!r}: expected e.g. '0-63' or '1,5,9'") from None
  if not seeds or min(seeds) < 0:
    raise JaxganError(f'bad seeds {text!r}: need at least one seed, none negative')
  return seeds


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m jaxgan.sample',
                              description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='a jaxgan training workdir')
  p.add_argument('--seeds', default='0-15', help="e.g. '0-63' or '1,5,9'")
  p.add_argument('--latents', metavar='Z.npy', default=None,
                 help='z to sample, one per row of a [n, latent_dim] .npy (instead of '
                 '--seeds)')
  p.add_argument('--noise-mode', choices=('const', 'random', 'none'), default=None,
                 help="StyleGAN's noise (default: the config's model.noise_mode)")
  p.add_argument('--psi', type=float, default=None,
                 help='truncation psi (StyleGAN; default: the config\'s, 1 = none)')
  p.add_argument('--truncation-cutoff', type=int, default=None,
                 help='truncate only the first N style layers')
  p.add_argument('--style-mix', nargs=2, metavar=('ROW_SEEDS', 'COL_SEEDS'),
                 help='the style-mixing figure instead of samples')
  p.add_argument('--mix-layer', type=int, default=None,
                 help='first layer whose style comes from the column seed')
  p.add_argument('--style-grid', metavar='INPUTS',
                 help='a style-controlled translator\'s grid: rows = these images, '
                 'columns = styles')
  p.add_argument('--num-styles', type=int, default=8, help='style grid: columns')
  p.add_argument('--style-seed', type=int, default=0, help='style grid: the styles\' seed')
  p.add_argument('--interpolate', action='store_true',
                 help='style grid: columns interpolate between two random styles')
  p.add_argument('--direction', default=None,
                 help='style grid: which translator (default: the first with a style)')
  p.add_argument('--max-rows', type=int, default=8, help='style grid: at most N inputs')
  p.add_argument('--output', required=True, help='grid.png, or a folder/ for one PNG '
                 'per seed')
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  return p.parse_args(argv)


def _latents(sampler, seeds):
  import jax
  import jax.numpy as jnp
  return jnp.stack([jax.random.normal(jax.random.PRNGKey(s), (sampler.latent_dim,))
                    for s in seeds])


def _jit(fn, model, **jit_kwargs):
  """`fn` jitted for the devices the restored weights live on (CPU: its conv
  formulations; `cpu_conv.jit_placed`)."""
  import jax
  from jaxgan.models import cpu_conv
  return cpu_conv.jit_placed(fn, jax.tree.leaves(model)[0].sharding, **jit_kwargs)


def load_latents(path, latent_dim: int) -> np.ndarray:
  """The rows of a .npy file as float32 z [n, latent_dim]; a one-line error for
  anything else."""
  try:
    z = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise JaxganError(f'--latents {path}: cannot read it as a .npy array ({e})') from None
  if z.ndim == 1 and z.shape[0] == latent_dim:
    z = z[None]
  if z.ndim != 2 or z.shape[1] != latent_dim or z.shape[0] < 1 or z.dtype.kind not in 'fiu':
    raise JaxganError(f'--latents {path}: expected numbers of shape [n, {latent_dim}], '
                      f'got {z.dtype} {list(z.shape)}')
  z = z.astype(np.float32)
  if not np.all(np.isfinite(z)):
    raise JaxganError(f'--latents {path}: holds inf or NaN')
  return z


def _images(sampler, model, seeds, psi, cutoff, z=None) -> np.ndarray:
  if z is None:
    z = _latents(sampler, seeds)
  if sampler.styles is None:
    out = _jit(sampler.decode, model)(model, z)
  else:
    ws = _jit(sampler.styles, model, static_argnums=(2, 3))(model, z, psi, cutoff)
    out = _jit(sampler.synthesize, model)(model, ws)
  return np.asarray(out)


def _style_mix(sampler, model, rows, cols, psi, cutoff, layer) -> np.ndarray:
  """[1 + len(rows), 1 + len(cols)] figure cells as one grid image (uint8)."""
  styles = _jit(sampler.styles, model, static_argnums=(2, 3))
  synthesize = _jit(sampler.synthesize, model)
  w_rows = styles(model, _latents(sampler, rows), psi, cutoff)
  w_cols = styles(model, _latents(sampler, cols), psi, cutoff)
  coarse = np.arange(sampler.num_ws) < layer
  mixed = np.where(coarse[None, None, :, None], np.asarray(w_rows)[:, None],
                   np.asarray(w_cols)[None, :])  # [rows, cols, num_ws, w_dim]
  cells = np.asarray(synthesize(model, mixed.reshape((-1,) + mixed.shape[2:])))
  cells = cells.reshape((len(rows), len(cols)) + cells.shape[1:])
  row_images = np.asarray(synthesize(model, w_rows))
  col_images = np.asarray(synthesize(model, w_cols))
  blank = np.ones_like(row_images[:1])  # white in [-1, 1]
  # make_grid: row i is sample i, column j is columns[j][i].
  columns = [np.concatenate([blank, row_images])]
  for j in range(len(cols)):
    columns.append(np.concatenate([col_images[j:j + 1], cells[:, j]]))
  return images.make_grid(columns)


def _as_grid(batch: np.ndarray) -> np.ndarray:
  """n images -> a near-square grid, row-major."""
  n = len(batch)
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  padded = np.concatenate([batch, np.ones((rows * cols - n,) + batch.shape[1:],
                                          batch.dtype)])
  grid = padded.reshape((rows, cols) + batch.shape[1:])
  return images.make_grid([grid[:, j] for j in range(cols)])


def _style_grid(args) -> None:
  """The style grid (see the module doc) written to args.output."""
  from PIL import Image
  from jaxgan import translate
  if args.num_styles < (2 if args.interpolate else 1) or args.max_rows < 1:
    raise JaxganError(f'--num-styles must be >= {2 if args.interpolate else 1} and '
                      f'--max-rows >= 1, got {args.num_styles} and {args.max_rows}')
  if args.style_seed < 0:
    raise JaxganError(f'--style-seed must be >= 0, got {args.style_seed}')
  paths = translate.list_inputs(Path(args.style_grid))[:args.max_rows]
  if not paths:
    raise JaxganError(f'no image in {args.style_grid}')
  generator = translate.Generator(Path(args.workdir), args.direction, args.step,
                                  style_for='--style-grid')
  if args.interpolate:
    ends = generator.random_styles(args.style_seed, 2)
    t = np.linspace(0.0, 1.0, args.num_styles)[:, None]
    styles = (1 - t) * ends[0] + t * ends[1]
  else:
    styles = generator.random_styles(args.style_seed, args.num_styles)
  size = generator.task.config.data.image_size
  rows = []
  for path in paths:
    rgb = np.asarray(Image.fromarray(images.read_rgb(path)).resize(
        (size, size), Image.BICUBIC))
    rows.append([rgb, *generator(rgb, styles)])
  # make_grid: column j holds every row's j-th image, in [-1, 1].
  columns = [np.stack([row[j] for row in rows]).astype(np.float32) / 127.5 - 1.0
             for j in range(len(rows[0]))]
  out = Path(args.output)
  out.parent.mkdir(parents=True, exist_ok=True)
  images.write_png(out, images.make_grid(columns))
  kind = 'interpolated' if args.interpolate else 'random'
  print(f'wrote the {generator.direction} style grid ({len(rows)} input(s) x {len(styles)} '
        f'{kind} styles, seed {args.style_seed}) of the step-{generator.step} '
        f'checkpoint to {out}')


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  if args.style_grid:
    _style_grid(args)
    return
  seeds = parse_seeds(args.seeds)
  if args.latents and args.style_mix:
    raise JaxganError('--latents and --style-mix cannot be combined (style mixing takes '
                      'seeds)')
  from jaxgan import runs
  from jaxgan.tasks.base import Sampler
  config, task, model, step = runs.restore_inference(Path(args.workdir), args.step)
  samplers = [p for p in task.predictors().values() if isinstance(p, Sampler)]
  if not samplers:
    raise JaxganError(f'task {config.task} does not sample images from noise; for '
                      'image-to-image tasks use python -m jaxgan.translate')
  sampler = samplers[0]
  styled = sampler.styles is not None
  if args.noise_mode is not None:
    if 'noise_mode' not in config.model:
      raise JaxganError(f'--noise-mode needs a generator with noise inputs (StyleGAN); '
                        f'task {config.task} has none')
    # The task's synthesis reads the mode from its config when traced.
    task.config.model.noise_mode = args.noise_mode
  z = None
  if args.latents:
    z = load_latents(args.latents, sampler.latent_dim)
  if not styled and (args.psi is not None or args.truncation_cutoff is not None
                     or args.style_mix):
    raise JaxganError(f'--psi, --truncation-cutoff and --style-mix need a style-based '
                      f'generator; task {config.task} has none')
  psi = config.model.get('truncation_psi', 1.0) if args.psi is None else args.psi
  cutoff = args.truncation_cutoff
  if cutoff is not None and not 0 <= cutoff <= sampler.num_ws:
    raise JaxganError(f'--truncation-cutoff={cutoff} must be in [0, {sampler.num_ws}]')
  out = Path(args.output)

  if args.style_mix:
    rows, cols = (parse_seeds(s) for s in args.style_mix)
    layer = sampler.num_ws // 2 if args.mix_layer is None else args.mix_layer
    if not 0 < layer < sampler.num_ws:
      raise JaxganError(f'--mix-layer={layer} must be in [1, {sampler.num_ws - 1}]')
    out.parent.mkdir(parents=True, exist_ok=True)
    images.write_png(out, _style_mix(sampler, model, rows, cols, psi, cutoff, layer))
    print(f'wrote the style-mixing figure ({len(rows)} x {len(cols)}, layers < {layer} '
          f'from the rows) of the step-{step} checkpoint to {out}')
    return

  batch = _images(sampler, model, seeds, psi, cutoff, z)
  if z is None:
    names = [f'seed{seed:04d}.png' for seed in seeds]
  else:
    width = max(4, len(str(len(z) - 1)))
    names = [f'latent{i:0{width}d}.png' for i in range(len(z))]
  if args.output.endswith('/') or out.is_dir():
    out.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, batch):
      images.write_png(out / name, images.make_grid([image[None]], pad=0))
    print(f'wrote {len(names)} image(s) of the step-{step} checkpoint to {out}/')
  else:
    out.parent.mkdir(parents=True, exist_ok=True)
    images.write_png(out, _as_grid(batch))
    print(f'wrote a grid of {len(names)} image(s) of the step-{step} checkpoint to {out}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
