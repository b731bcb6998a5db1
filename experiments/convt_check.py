"""Transposed convolution on this backend: jaxgan's phase split against XLA's
convolution over the stride-dilated input, forward + both gradients, per layer shape.

  python experiments/convt_check.py [--batches 1,8] [--dtype float32] [--out DIR]

`jaxgan.models.layers.ConvTranspose` computes ConvTranspose2d as s*s stride-1 phase
convolutions when the output is exactly s*H (every reference configuration); the
alternative is `lax.conv_general_dilated` with lhs_dilation (cuDNN's backward-data
convolution on GPU). Phases won on CPU at every size measured (BUILD_NOTES); this
script measures the same choice on another backend (run by experiments/gpu_check.sh),
through `cpu_conv.jit_placed(..., phase_split=...)`, so the placement's phase split can
be set per backend from numbers. Prints a markdown table
(median ms over --steps after --warmup, compile excluded) and writes it to
--out/convt_check.md when --out is given.
"""

import argparse
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from jaxgan.models import cpu_conv, layers  # noqa: E402

# (name, in pixels a side, in channels, out channels, kernel, stride, padding,
# output_padding): the ResNet generators' upsampling and the U-Net's.
SHAPES = [
    ('resnet up1 @256', 64, 256, 128, 3, 2, 1, 1),
    ('resnet up2 @256', 128, 128, 64, 3, 2, 1, 1),
    ('unet inner @256', 8, 1024, 512, 4, 2, 1, 0),
    ('unet mid @256', 32, 512, 128, 4, 2, 1, 0),
    ('unet outer @256', 128, 128, 3, 4, 2, 1, 0),
]


def _time(fn, *args, steps, warmup):
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times) * 1e3


def measure(name, size, cin, cout, k, s, p, op, batch, dtype, steps, warmup):
  module = layers.ConvTranspose(cout, k, s, p, op, use_bias=True, dtype=dtype)
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, cin), dtype)
  params = module.init(jax.random.PRNGKey(1), x)
  row = {}
  outputs = {}
  def loss(params, x):
    return jnp.sum(jnp.square(module.apply(params, x).astype(jnp.float32)))

  # Placed on the devices the input lives on, as the trainer places its steps.
  for split in (True, False):
    step = cpu_conv.jit_placed(jax.value_and_grad(loss, argnums=(0, 1)), x.sharding,
                               phase_split=split)
    outputs[split] = cpu_conv.jit_placed(module.apply, x.sharding,
                                         phase_split=split)(params, x)
    row[split] = _time(step, params, x, steps=steps, warmup=warmup)
  diff = float(jnp.max(jnp.abs(outputs[True].astype(jnp.float32)
                               - outputs[False].astype(jnp.float32))))
  scale = float(jnp.max(jnp.abs(outputs[False].astype(jnp.float32))))
  return (f'| {name} | {batch} | {dtype} | {row[True]:.3f} | {row[False]:.3f} | '
          f'{row[False] / row[True]:.2f}x | {diff / max(scale, 1e-30):.1e} |')


def main(argv):
  ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  ap.add_argument('--batches', default='1,8')
  ap.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'))
  ap.add_argument('--steps', type=int, default=10)
  ap.add_argument('--warmup', type=int, default=2)
  ap.add_argument('--max-size', type=int, default=1024,
                  help='skip layers whose input is larger (CPU smoke runs)')
  ap.add_argument('--out', default='')
  args = ap.parse_args(argv)
  dev = jax.devices()[0]
  lines = [f'# convt_check: {dev.device_kind} ({dev.platform}), jax {jax.__version__}; '
           f'median ms of forward + gradients over {args.steps} steps',
           '| layer | batch | dtype | phases ms | dilated conv ms | dilated / phases | '
           'max rel. diff |', '|---|---|---|---|---|---|---|']
  print('\n'.join(lines), flush=True)
  for batch in (int(b) for b in args.batches.split(',') if b):
    for shape in SHAPES:
      if shape[1] > args.max_size:
        continue
      line = measure(*shape, batch, jnp.dtype(args.dtype), args.steps, args.warmup)
      print(line, flush=True)
      lines.append(line)
  if args.out:
    with open(os.path.join(args.out, 'convt_check.md'), 'w') as f:
      f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
  main(sys.argv[1:])
