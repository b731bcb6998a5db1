"""Per-layer forward+backward speed of the CycleGAN networks' layer types on this
machine (GFLOP/s each), to find what limits the train step.

  python experiments/profile_layers.py --size 64
"""

import argparse
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import cpu_conv, layers


def timeit(fn, *args, n=10):
  fn(*args)
  jax.block_until_ready(fn(*args))
  ts = []
  for _ in range(n):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    ts.append(time.perf_counter() - t0)
  return statistics.median(ts)


def fwd_bwd(module, x):
  params = module.init(jax.random.PRNGKey(0), x)

  def loss(p, x):
    return jnp.sum(module.apply(p, x) ** 2)

  # Traced for the devices x lives on, so a CPU run profiles the CPU formulations.
  f = cpu_conv.jit_placed(jax.grad(loss, argnums=(0, 1)), x.sharding)
  compiled = f.lower(params, x).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, params, float(cost['flops'])


class Pad(nn.Module):
  inner: nn.Module
  pad: int

  @nn.compact
  def __call__(self, x):
    return self.inner(layers.reflect_pad(x, self.pad))


def cases(s, ngf=64):
  q = s // 4
  return [
      ('in conv7 3->64 +reflect', Pad(layers.conv(ngf, 7, use_bias=True), 3), (1, s, s, 3)),
      ('down conv3 s2 64->128', layers.conv(2 * ngf, 3, 2, 1, use_bias=True), (1, s, s, ngf)),
      ('down conv3 s2 128->256', layers.conv(4 * ngf, 3, 2, 1, use_bias=True), (1, s // 2, s // 2, 2 * ngf)),
      ('res conv3 256 +reflect', Pad(layers.conv(4 * ngf, 3, use_bias=True), 1), (1, q, q, 4 * ngf)),
      ('up convT3 s2 256->128', layers.conv_transpose(2 * ngf, 3, 2, 1, 1, use_bias=True), (1, q, q, 4 * ngf)),
      ('up convT3 s2 128->64', layers.conv_transpose(ngf, 3, 2, 1, 1, use_bias=True), (1, s // 2, s // 2, 2 * ngf)),
      ('out conv7 64->3 +reflect', Pad(layers.conv(3, 7, use_bias=True), 3), (1, s, s, ngf)),
      ('D conv4 s2 3->64', layers.conv(64, 4, 2, 1, use_bias=True), (1, s, s, 3)),
      ('D conv4 s2 64->128', layers.conv(128, 4, 2, 1, use_bias=True), (1, s // 2, s // 2, 64)),
      ('D conv4 s2 128->256', layers.conv(256, 4, 2, 1, use_bias=True), (1, s // 4, s // 4, 128)),
      ('D conv4 s1 256->512', layers.conv(512, 4, 1, 1, use_bias=True), (1, s // 8, s // 8, 256)),
      ('D conv4 s1 512->1', layers.conv(1, 4, 1, 1, use_bias=True), (1, s // 8 - 1, s // 8 - 1, 512)),
  ]


def main(argv):
  p = argparse.ArgumentParser()
  p.add_argument('--size', type=int, default=64)
  args = p.parse_args(argv)
  print(f'| layer (fwd+bwd, {args.size}² input) | ms | GFLOP | GFLOP/s |')
  print('|---|---|---|---|')
  for name, module, shape in cases(args.size):
    x = jax.random.normal(jax.random.PRNGKey(1), shape)
    f, params, flops = fwd_bwd(module, x)
    t = timeit(f, params, x)
    print(f'| {name} | {t * 1e3:.2f} | {flops / 1e9:.3f} | {flops / 1e9 / t:.0f} |', flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
