"""Flax `init` / `apply` and other test computations as one XLA program each.

Called eagerly, `module.init` / `module.apply` run op by op, and XLA compiles every
primitive at every shape separately: a small U-Net's init and forward pass were ~165
compiles (~10 s on CPU), against 2 compiled as whole programs.

Compiled as every test compiles (LLVM O0 on CPU: `tests/conftest.py` sets it in
XLA_FLAGS for the suite's processes). Neither helper places the computation
(`cpu_conv.placement`): the convolutions are XLA's, as in an eager call outside a
placement.
"""

import jax


def init(module, rngs, *args, **static):
  """`module.init(rngs, *args, **static)` as one program: `static` (e.g. `train=False`)
  passed as Python values, not traced."""
  return jax.jit(lambda rngs, *args: module.init(rngs, *args, **static))(rngs, *args)


def apply(module, variables, *args, rngs=None, **static):
  """`module.apply(variables, *args, rngs=rngs, **static)` as one program: `static`
  (`train`, `mutable`, ...) as Python values; the variables, inputs and rngs traced."""
  fn = lambda variables, rngs, *args: module.apply(variables, *args, rngs=rngs, **static)
  return jax.jit(fn)(variables, rngs, *args)
