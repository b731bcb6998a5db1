"""Flax `init` / `apply` and other test computations as one XLA program each.

Called eagerly, `module.init` / `module.apply` run op by op, and XLA compiles every
primitive at every shape separately: a small U-Net's init and forward pass were ~165
compiles (~10 s on CPU), against 2 compiled as whole programs.

These programs are compiled with the loop's init compiler options
(`runs.INIT_COMPILER_OPTIONS`: LLVM O0 on CPU), which compile a network's forward pass
2-3x faster than the default (a U-Net at 128²: ~0.8 against ~2.1 s) and give the same
results up to float rounding (random normal draws may differ in the last bit): the tests
check what a computation returns, not how fast it runs. Neither helper places the
computation (`cpu_conv.placement`): the convolutions are XLA's, as in an eager call
outside a placement.
"""

import jax

from jaxgan import runs


def jit(fn, **jit_kwargs):
  """`jax.jit(fn, **jit_kwargs)` compiled with `runs.INIT_COMPILER_OPTIONS` for the
  default backend (XLA's defaults where it names none)."""
  options = runs.INIT_COMPILER_OPTIONS.get(jax.default_backend())
  return jax.jit(fn, compiler_options=options, **jit_kwargs)


def init(module, rngs, *args, **static):
  """`module.init(rngs, *args, **static)` as one program: `static` (e.g. `train=False`)
  passed as Python values, not traced. Not usable inside another trace (`eval_shape`:
  call `module.init` there)."""
  return jit(lambda rngs, *args: module.init(rngs, *args, **static))(rngs, *args)


def apply(module, variables, *args, rngs=None, **static):
  """`module.apply(variables, *args, rngs=rngs, **static)` as one program: `static`
  (`train`, `mutable`, ...) as Python values; the variables, inputs and rngs traced."""
  fn = lambda variables, rngs, *args: module.apply(variables, *args, rngs=rngs, **static)
  return jit(fn)(variables, rngs, *args)
