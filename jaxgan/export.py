"""Export a trained generator for use outside jaxgan:
`python -m jaxgan.export --workdir DIR --format onnx|stablehlo [--direction AtoB]
[--output PATH] [--step N]`.

Restores the run's inference weights as `translate` and `sample` do
(`runs.restore_inference`) and writes one self-contained model of the forward pass,
the weights inside:

  * translators (CycleGAN, pix2pix, MUNIT): `image` [batch, height, width, C] in
    [-1, 1], NHWC as jaxgan, -> `output` of the same shape; MUNIT takes a second
    input `style` [batch, style_dim] (its prior is N(0, I)). height and width must be
    multiples of the generator's stride (`size_multiple`, the padding `translate` adds
    is the caller's job) and at least a minimum the command prints (the reflect pads of
    the innermost layers need 2 pixels);
  * samplers: DCGAN `z` [batch, latent_dim] -> `output` [batch, S, S, C]; StyleGAN
    `z` and `psi` (a float32 scalar: truncation towards the average w, 1 = none), the
    noise as the config's `model.noise_mode`: const (the default) or none; random
    noise (drawn per batch) is refused.

Inference semantics are the ones jaxgan's tools use, fixed in the graph: the EMA
weights where the run keeps them and `ema.for_inference` is on; pix2pix's test mode
(`model.test_batch_stats`, on by default) as `translate` runs it: batch norm with each
image's own statistics and dropout on, with one fixed mask (from `PRNGKey(seed)`, the
same for every image, so an output never depends on the batch it came in) - the
exported graph draws that very mask (bit for bit, jax's threefry); with
`test_batch_stats=false`, the running averages and no dropout.

ONNX (opset 18, needs the `export` extra: `pip install -e '.[export]'`): batch,
height and width are dynamic. After writing, ONNX Runtime runs the file on a fixed
input and its output must equal jaxgan's own forward (as `translate` / `sample` run it,
with its CPU convolution formulations) to 1e-4, or the file is removed and the command
fails. StableHLO: `jax.export` with symbolic batch (and height, width), serialised with
its calling convention (`Exported.serialize()`); reload with `jax.export.deserialize`
and call `.call(...)`; checked the same way after writing.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from jaxgan import cli
from jaxgan.errors import JaxganError

FORMATS = {'onnx': '.onnx', 'stablehlo': '.stablehlo'}
TOLERANCE = 1e-4
# Platforms the StableHLO module is lowered for (jax picks the caller's at `call`).
STABLEHLO_PLATFORMS = ('cpu', 'cuda')
# The smallest inner size (image side / size_multiple) tried for the symbolic trace:
# each network's reflect pads need its innermost maps to have a few pixels.
_MIN_INNER = (1, 2, 4, 8, 16)


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m jaxgan.export',
                              description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True, help='a jaxgan training workdir')
  p.add_argument('--format', required=True, help='onnx or stablehlo')
  p.add_argument('--direction', default=None,
                 help='translators: AtoB or BtoA (default: the first); not for samplers')
  p.add_argument('--output', default=None,
                 help='the file to write (default: WORKDIR/exported/NAME_stepN.EXT)')
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  args = p.parse_args(argv)
  if args.format not in FORMATS:
    raise JaxganError(f"unknown --format '{args.format}'; valid: {', '.join(FORMATS)}")
  return args


@dataclasses.dataclass
class Exportable:
  """A restored generator as a function of named inputs, the weights closed over.

  inputs: (name, shape) pairs, shapes with the dimension names 'batch', 'height',
  'width' where dynamic; `multiple`: height and width are multiples of it (>= min_size).
  `reference`: jaxgan's own forward (as the tools run it) for the parity check."""
  name: str
  kind: str  # 'translator' | 'sampler'
  fn: Callable
  inputs: list[tuple[str, tuple]]
  step: int
  multiple: int = 1
  min_size: int = 1
  reference: Callable | None = None
  check_inputs: Callable | None = None  # () -> the fixed inputs of the check

  def symbolic_specs(self, min_inner: int):
    """jax.ShapeDtypeStructs with symbolic b (and h, w: height = multiple * h)."""
    import jax
    import jax.numpy as jnp
    from jax import export
    m = self.multiple
    if self.kind == 'translator':
      b, h, w = export.symbolic_shape(
          f'b, {m}*h, {m}*w', constraints=(f'h >= {min_inner}', f'w >= {min_inner}'))
      dims = {'batch': b, 'height': h, 'width': w}
    else:
      dims = {'batch': export.symbolic_shape('b')[0]}
    return [jax.ShapeDtypeStruct(tuple(dims.get(d, d) for d in shape), jnp.float32)
            for _, shape in self.inputs]


def load(workdir, direction=None, step=None) -> Exportable:
  """The exportable generator of the run in `workdir` (see the module doc)."""
  import functools
  import jax
  from jaxgan import runs, translate
  from jaxgan.models import cpu_conv
  from jaxgan.tasks.base import Sampler, Translator
  config, task, model, step = runs.restore_inference(Path(workdir), step)
  predictors = task.predictors()
  where = jax.tree.leaves(model)[0].sharding

  def bind(apply):
    """(the exported function: the weights closed over, constants of the graph; the
    reference: jitted as translate and sample run it, the weights an argument)."""
    return (functools.partial(apply, model),
            functools.partial(cpu_conv.jit_placed(apply, where), model))
  rng = np.random.default_rng(0)
  if any(isinstance(p, Translator) for p in predictors.values()):
    direction, predictor = translate.pick_translator(task, direction)
    c, m = task.channels, predictor.size_multiple
    image = ('image', ('batch', 'height', 'width', c))
    # The check: 2 images, not square, the training size by one stride more.
    size = max(config.data.image_size, 2 * m)
    x = lambda: rng.uniform(-1, 1, (2, size, size + m, c)).astype(np.float32)
    if predictor.style is not None:
      style = predictor.style
      fn, reference = bind(style.apply)
      inputs = [image, ('style', ('batch', style.style_dim))]
      check = lambda: [x(), rng.standard_normal((2, style.style_dim)).astype(np.float32)]
    else:
      fn, reference = bind(predictor.fn)
      inputs, check = [image], lambda: [x()]
    return Exportable(direction, 'translator', fn, inputs, step, multiple=m,
                      reference=reference, check_inputs=check)
  if direction is not None:
    raise JaxganError(f'--direction is for translators; task {config.task} samples '
                      'from noise')
  samplers = [p for p in predictors.values() if isinstance(p, Sampler)]
  if not samplers:
    raise JaxganError(f'task {config.task} has no generator to export')
  sampler = samplers[0]
  z = ('z', ('batch', sampler.latent_dim))
  zs = lambda: rng.standard_normal((3, sampler.latent_dim)).astype(np.float32)
  if sampler.styles is not None:
    if config.model.get('noise_mode') == 'random':
      # Drawn per batch from a fixed key: a function of the batch size, which neither
      # the ONNX graph nor the one-sample-at-a-time StableHLO module reproduces.
      raise JaxganError("StyleGAN export needs model.noise_mode 'const' or 'none' in "
                        f"{Path(workdir) / 'config.json'}; this run's is 'random'")
    def apply(model, z, psi):
      return sampler.synthesize(model, sampler.styles(model, z, psi, None))
    fn, reference = bind(apply)
    inputs = [z, ('psi', ())]
    check = lambda: [zs(), np.float32(0.7)]
  else:
    fn, reference = bind(sampler.decode)
    inputs, check = [z], lambda: [zs()]
  return Exportable(config.task, 'sampler', fn, inputs, step, reference=reference,
                    check_inputs=check)


def trace(exportable: Exportable, what: Callable):
  """`what(specs)` under the generic convolution forms (no CPU formulations, no
  transposed-conv phase split), trying larger minimum sizes until the symbolic trace
  goes through (reflect pads need a few pixels); sets `exportable.min_size`."""
  from jaxgan.models import cpu_conv
  last = None
  for min_inner in _MIN_INNER if exportable.kind == 'translator' else (1,):
    try:
      with cpu_conv.placement(None, phase_split=False):
        result = what(exportable.symbolic_specs(min_inner))
    except ValueError as e:  # shape polymorphism: the size may be too small
      if 'Shape polymorphism' not in str(e) and 'symbolic' not in str(e):
        raise
      last = e
      continue
    exportable.min_size = exportable.multiple * min_inner
    return result
  raise JaxganError(f'cannot export with a symbolic image size: {str(last).splitlines()[0]}')


def _check(exportable: Exportable, run_exported: Callable, path: Path, what: str):
  """Removes `path` and fails unless `run_exported(inputs)` equals jaxgan's output on
  the fixed check inputs to TOLERANCE; returns the max difference."""
  inputs = exportable.check_inputs()
  want = np.asarray(exportable.reference(*inputs))
  try:
    got = np.asarray(run_exported(inputs))
  except Exception as e:
    path.unlink(missing_ok=True)
    from jaxgan.checkpointing import one_line
    raise JaxganError(f'{what} could not run the exported model ({one_line(e)}); '
                      f'removed {path}') from None
  diff = (float(np.max(np.abs(got - want))) if got.shape == want.shape
          else float('inf'))
  if not diff <= TOLERANCE:
    path.unlink(missing_ok=True)
    raise JaxganError(f"{what}'s output differs from jaxgan's by {diff:.3g} (shape "
                      f'{got.shape} vs {want.shape}; tolerance {TOLERANCE}); removed '
                      f'{path}')
  return diff


def to_onnx(exportable: Exportable):
  """The ONNX ModelProto of `exportable` (dynamic batch, height, width)."""
  import jax
  from jaxgan import onnx_graph
  onnx_graph.require_onnx()
  closed = trace(exportable, lambda specs: jax.make_jaxpr(exportable.fn)(*specs))
  g = onnx_graph.Graph()
  names = [n for n, _ in exportable.inputs]
  shapes = [s for _, s in exportable.inputs]
  for name, shape in exportable.inputs:
    for axis, d in enumerate(shape):
      if d == 'batch':
        g.bind_dim('b', name, axis)
      elif d in ('height', 'width'):
        g.bind_dim(d[0], name, axis, exportable.multiple)
  out = closed.jaxpr.outvars[0].aval.shape
  names_of = {str(s): d for s, d in zip(closed.in_avals[0].shape, shapes[0])
              if isinstance(d, str)}
  out_shape = [d if isinstance(d, int) else names_of.get(str(d), str(d)) for d in out]
  doc = (f'jaxgan {exportable.kind} {exportable.name} (step {exportable.step}); inputs '
         f"{', '.join(f'{n}{list(s)}' for n, s in exportable.inputs)}, NHWC in [-1, 1]; "
         f'height and width multiples of {exportable.multiple}, at least '
         f'{exportable.min_size}')
  return g.model(closed, names, shapes, ['output'], [out_shape], doc=doc)


def check_onnx(exportable: Exportable, path: Path) -> float:
  """ONNX Runtime on the fixed check inputs against jaxgan's forward (see `_check`)."""
  import onnxruntime as ort

  def run(inputs):
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    feed = {n: np.asarray(v, np.float32) for (n, _), v in zip(exportable.inputs, inputs)}
    return session.run(None, feed)[0]

  return _check(exportable, run, path, 'ONNX Runtime')


def _one_at_a_time(exportable: Exportable) -> Callable:
  """`exportable.fn` mapped over the batch, one sample per call (`lax.map`)."""
  import jax
  batched = [shape[:1] == ('batch',) for _, shape in exportable.inputs]

  def fn(*args):
    def one(mapped):
      it = iter(mapped)
      full = [next(it)[None] if b else a for a, b in zip(args, batched)]
      return exportable.fn(*full)[0]
    return jax.lax.map(one, [a for a, b in zip(args, batched) if b])

  return fn


def to_stablehlo(exportable: Exportable):
  """The `jax.export.Exported` of `exportable` (symbolic batch, height, width).

  A network whose convolution groups follow the batch (StyleGAN's fused modulated
  convolution: one group per sample) cannot be lowered with a symbolic batch (XLA's
  group count is static): it is exported one sample at a time (`lax.map`), the same
  numbers."""
  import jax
  from jax import export

  def lower(fn):
    return trace(exportable, lambda specs: export.export(
        jax.jit(fn), platforms=STABLEHLO_PLATFORMS)(*specs))

  try:
    return lower(exportable.fn)
  except NotImplementedError as e:
    if 'feature_group_count' not in str(e):
      raise
    return lower(_one_at_a_time(exportable))


def check_stablehlo(exportable: Exportable, path: Path) -> float:
  """The file reloaded with `jax.export.deserialize`, called on the check inputs."""
  from jax import export
  return _check(exportable,
                lambda inputs: export.deserialize(bytearray(path.read_bytes())).call(*inputs),
                path, 'the reloaded StableHLO module')


def write(exportable: Exportable, fmt: str, path: Path) -> float:
  """Writes `exportable` as `fmt` to `path` and checks it; the max difference."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{path.name}.tmp')
  if fmt == 'onnx':
    model = to_onnx(exportable)
    tmp.write_bytes(model.SerializeToString())
  else:
    tmp.write_bytes(to_stablehlo(exportable).serialize())
  tmp.replace(path)
  return (check_onnx if fmt == 'onnx' else check_stablehlo)(exportable, path)


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  if args.format == 'onnx':
    from jaxgan import onnx_graph
    onnx_graph.require_onnx(runtime=True)
  exportable = load(args.workdir, args.direction, args.step)
  ext = FORMATS[args.format]
  out = (Path(args.output) if args.output else
         Path(args.workdir) / 'exported' / f'{exportable.name}_step{exportable.step}{ext}')
  diff = write(exportable, args.format, out)
  inputs = ', '.join(f"{n}[{', '.join(map(str, s))}]" for n, s in exportable.inputs)
  sizes = (f'; height and width multiples of {exportable.multiple}, at least '
           f'{exportable.min_size}' if exportable.kind == 'translator' else '')
  print(f'wrote {out} ({args.format}, the step-{exportable.step} {exportable.name} '
        f'{exportable.kind}; inputs {inputs}{sizes}); its output equals jaxgan\'s to '
        f'{diff:.1e}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
