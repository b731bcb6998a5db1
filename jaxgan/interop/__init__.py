"""Importing networks trained by the reference PyTorch projects, without torch.

  `junyanz`   pytorch-CycleGAN-and-pix2pix state dicts (`*_net_G.pth`, `*_net_G_A.pth`,
              `*_net_D_B.pth`, ...): ResNet-6/9 and U-Net generators, PatchGAN and
              PixelGAN discriminators, read by `jaxgan.torchfile`.
  `stylegan`  stylegan2-ada-pytorch network snapshots (`network-snapshot-*.pkl`): G, D,
              G_ema, w_avg and the const-noise buffers, through a restricted unpickler
              that never runs the source code the snapshot carries.

Both turn a file into a network's Flax variables ({'params': ..., 'batch_stats': ...})
in jaxgan's layout, checked leaf by leaf against the shapes the experiment's config
gives: a mismatch is a one-line `JaxganError` naming the file's key and both shapes.
`jaxgan.convert` writes them into a workdir that every tool and training can use.
"""

import numpy as np
# A nested dict's leaves by their key path (tuples of names), and back.
from flax.traverse_util import flatten_dict as flat_paths, unflatten_dict as unflatten

from jaxgan.errors import JaxganError


def fmt_shape(shape) -> str:
  return '[' + ', '.join(str(int(d)) for d in shape) + ']'


def as_float32(name: str, array) -> np.ndarray:
  array = np.asarray(array)
  if array.dtype.kind != 'f':
    raise JaxganError(f'{name} has dtype {array.dtype}; expected floating point')
  out = array.astype(np.float32)
  if not np.all(np.isfinite(out)):
    raise JaxganError(f'{name} holds inf or NaN')
  return out
