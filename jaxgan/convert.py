"""Import a reference PyTorch model into a new jaxgan workdir, without torch:
`python -m jaxgan.convert --from PATH [--from PATH ...] --experiment NAME[:VARIANT]
--workdir DIR [--config.KEY=VALUE ...]`.

Sources (`jaxgan.interop`):
  pytorch-CycleGAN-and-pix2pix `.pth` state dicts, named as the reference saves them
  (`latest_net_G_A.pth`, `200_net_D_B.pth`, `latest_net_G.pth`, ...) or given as
  NET=PATH with jaxgan's network name (CycleGAN: G = A->B, F = B->A, D_A, D_B;
  pix2pix: G, D). A folder stands for its `*_net_*.pth` files (the `latest_` ones
  when there are several epochs). The reference's netG_A is G, netG_B is F, netD_A
  (which judges domain B) is D_B and netD_B is D_A. A CycleGAN test model's single
  `*_net_G.pth` is G; networks no file gives are freshly initialised (logged). The
  architecture must be the config's (`--config.model.generator=resnet_9blocks
  --config.model.ngf=64 ...`): a mismatch is one line naming the key, both shapes and
  what the file holds.
  A stylegan2-ada-pytorch network snapshot `.pkl` (experiment `stylegan`, the default
  for a .pkl): its architecture (resolution, channels, z/w dims, mapping layers,
  channel_base/max, D architecture, mbstd group, conv_clamp) sets the config; G, D,
  G_ema (the EMA generator), w_avg and the synthesis buffers (const noise, filters)
  are imported.

The workdir gets what a training run's first checkpoint would hold: config.json and an
Orbax checkpoint at step 0 (fresh optimizer state, empty image pools). `translate`,
`sample`, `evaluate` use it as any run, and `python -m jaxgan.main --workdir DIR`
fine-tunes it (give the training data at conversion, `--config.data.source=...`, or
pass it then with --config.train.allow_resume_changes=true). Nothing is written
unless every file imports; an existing run's workdir is refused.
"""

import argparse
import logging
import sys
from pathlib import Path

from jaxgan import cli, config as config_lib
from jaxgan.errors import JaxganError


def parse_args(argv):
  parser = argparse.ArgumentParser(prog='python -m jaxgan.convert',
                                   description=__doc__.split('\n')[0])
  parser.add_argument('--from', dest='sources', action='append', required=True,
                      metavar='[NET=]PATH', help='a .pth, a folder of them, or a .pkl '
                      '(repeatable)')
  parser.add_argument('--experiment', default=None,
                      help='NAME or NAME:VARIANT (default for a .pkl: stylegan)')
  parser.add_argument('--workdir', required=True, help='the new workdir')
  args, rest = parser.parse_known_args(argv)
  return args, config_lib.parse_overrides(rest)


# -- sources ------------------------------------------------------------------------


def _pth_files(folder: Path) -> dict[str, Path]:
  from jaxgan.interop import junyanz
  by_role = {}
  for path in sorted(folder.glob('*.pth')):
    role = junyanz.file_role(path)
    if role:
      by_role.setdefault(role, []).append(path)
  out = {}
  for role, paths in by_role.items():
    latest = [p for p in paths if p.name.startswith('latest_')]
    if len(paths) > 1 and len(latest) != 1:
      raise JaxganError(f'{folder}: several files for net_{role} '
                        f'({", ".join(p.name for p in paths)}); give one with --from')
    out[role] = latest[0] if len(paths) > 1 else paths[0]
  if not out:
    raise JaxganError(f'{folder}: no *_net_<G|G_A|G_B|D|D_A|D_B>.pth file in it')
  return out


def resolve_sources(sources, task_name: str, networks) -> dict[str, Path]:
  """jaxgan network name -> .pth file, from --from values."""
  from jaxgan.interop import junyanz
  names = junyanz.NETWORK_NAMES.get(task_name)
  if names is None:
    raise JaxganError(f'.pth files import into cyclegan or pix2pix, not {task_name}')
  out = {}

  def add(net, path):
    if net in out and out[net] != path:
      raise JaxganError(f'two files for network {net}: {out[net]} and {path}')
    out[net] = path

  for spec in sources:
    net, sep, rest = spec.partition('=')
    if sep and net in networks:
      path = Path(rest)
      if not path.is_file():
        raise JaxganError(f'--from {spec}: no such file {path}')
      add(net, path)
      continue
    path = Path(spec)
    if path.is_dir():
      found = _pth_files(path)
    elif path.is_file():
      role = junyanz.file_role(path)
      if role is None:
        raise JaxganError(f'{path}: cannot tell which network it is from its name; give it '
                          f'as NET={path} (NET one of {", ".join(networks)})')
      found = {role: path}
    else:
      raise JaxganError(f'--from {spec}: no such file or folder'
                        + (f' (or {net} is not a network of {task_name}: '
                           f'{", ".join(networks)})' if sep else ''))
    for role, p in found.items():
      if role not in names:
        raise JaxganError(f'{p}: a net_{role} file does not belong to a {task_name} model '
                          f'(its files: {", ".join("net_" + r for r in names)})')
      add(names[role], p)
  return out


def _spec_path(spec: str) -> Path:
  """The file of a --from value (PATH or NET=PATH)."""
  return Path(spec.partition('=')[2] if '=' in spec else spec)


def _is_pickle(sources) -> bool:
  return any(_spec_path(s).suffix == '.pkl' for s in sources)


# -- the workdir --------------------------------------------------------------------


def _fresh_workdir(workdir) -> Path:
  from jaxgan import workdir as workdir_lib
  path = workdir_lib.check_path(workdir)
  if (path / workdir_lib.CONFIG_FILE).exists() or (path / 'checkpoints').exists():
    raise JaxganError(f'workdir {path} already holds a run; convert into a new --workdir')
  return path


def _stylegan_config(config, path: Path, overrides):
  """`config` with the snapshot's architecture; an override that contradicts it is
  refused."""
  from jaxgan.interop import stylegan as sg_import
  snap = sg_import.Snapshot(path)
  values = sg_import.snapshot_config(snap)
  for key, value in values.items():
    group, leaf = key.split('.')
    with config[group].unlocked():
      config[group][leaf] = value
  for key, text in overrides:
    config_lib.apply_override(config, key, text)
    if key in values and config_lib.flatten(config)[key] != values[key]:
      raise JaxganError(f'--config.{key}={text} contradicts the snapshot ({key} = '
                        f'{values[key]!r})')
  return config, snap


def _import_pth(task, config, files, abstract):
  from jaxgan.interop import junyanz
  params, stats = {}, {}
  for net, path in files.items():
    kind = (config.model.generator if net in task.GENERATORS else
            config.model.discriminator)
    variables = junyanz.load_network(
        path, kind, config, {'params': abstract.params[net],
                             'batch_stats': abstract.batch_stats[net]})
    params[net], stats[net] = variables['params'], variables['batch_stats']
    logging.info('Imported %s from %s', net, path)
  return params, stats, {}, {}


def _import_pkl(task, config, snap, abstract):
  from jaxgan.interop import stylegan as sg_import
  loaded = sg_import.load(snap, abstract.params, abstract.aux['buffers'],
                          config.model.w_dim)
  params = {'G': loaded['G'], 'D': loaded['D']}
  ema = {}
  if 'G' in abstract.ema_params:
    ema['G'] = loaded['G_ema']
  else:  # no EMA kept: G_ema is what the reference samples with
    params['G'] = loaded['G_ema']
    logging.info('ema is off: G is the snapshot\'s G_ema')
  logging.info('Imported G, D, G_ema, w_avg and the synthesis buffers from %s', snap.path)
  return params, {}, ema, {'w_avg': loaded['w_avg'], 'buffers': loaded['buffers']}


def convert(sources, experiment, workdir, overrides) -> Path:
  """Writes the workdir; returns its path."""
  pickle = _is_pickle(sources)
  if pickle and len(sources) != 1:
    raise JaxganError('a .pkl snapshot holds every network: give it alone with --from')
  experiment = experiment or ('stylegan' if pickle else None)
  if experiment is None:
    raise JaxganError('--experiment is required for .pth files (cyclegan or pix2pix, '
                      'with the architecture in --config.model.*)')
  config = config_lib.get_experiment(experiment)
  workdir = _fresh_workdir(workdir)  # before reading a file that may be large
  snap = None
  if pickle:
    if config.task != 'stylegan':
      raise JaxganError(f'a stylegan2-ada-pytorch snapshot imports into stylegan, not '
                        f'{config.task}')
    path = _spec_path(sources[0])
    if not path.is_file():
      raise JaxganError(f'--from {sources[0]}: no such file')
    config, snap = _stylegan_config(config, path, overrides)
  else:
    for key, text in overrides:
      config_lib.apply_override(config, key, text)

  import jax
  import numpy as np
  from jaxgan import checkpointing, runs, sharding, workdir as workdir_lib
  task = runs.check_config(config)
  files = {} if pickle else resolve_sources(sources, config.task, tuple(task.modules))
  # The optimizers' state does not depend on the epoch length; training reads the
  # data's own when it starts (the checkpoint records none).
  task.prepare_training(1)
  mesh = sharding.make_mesh()
  abstract, shardings = runs.state_layout(task, config, mesh)
  if pickle:
    params, stats, ema, aux = _import_pkl(task, config, snap, abstract)
  else:
    params, stats, ema, aux = _import_pth(task, config, files, abstract)
    fresh = [n for n in task.modules if n not in params]
    if fresh:
      logging.info('Not in the files, freshly initialised (seed %d): %s', config.seed,
                   ', '.join(fresh))
  state = runs.jit_init(task.init_state, mesh, out_shardings=shardings)(
      jax.random.PRNGKey(config.seed))
  host = jax.device_get(state)
  new_params = {**host.params, **params}
  new_stats = {**host.batch_stats, **stats}
  new_ema = {**host.ema_params, **{n: new_params[n] for n in host.ema_params
                                   if n in params}, **ema}
  state = host.replace(
      params=new_params, batch_stats=new_stats, ema_params=new_ema,
      opt_state={g: task.optimizers[g].init(task.group(new_params, g))
                 for g in task.GROUPS},
      aux={**host.aux, **aux})
  state = jax.tree.map(lambda x, a: np.asarray(x, a.dtype), state, abstract)
  state = jax.device_put(state, shardings)

  lock = workdir_lib.Lock(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with lock:
    ckpt = checkpointing.Checkpoints(workdir / 'checkpoints', max_to_keep=1)
    try:
      bad, checksums = checkpointing.audit(state)
      if bad:
        raise JaxganError(f'the imported weights hold inf or NaN ({bad[0]})')
      ckpt.save(0, state, {'step': 0, 'epoch': 0, 'steps_per_epoch': None,
                           'seed': config.seed, 'data_source': config.data.source,
                           'global_batch': config.data.batch_size,
                           'checksums': checksums,
                           'imported_from': [str(p) for p in (
                               [snap.path] if pickle else files.values())]})
    finally:
      ckpt.close()
    workdir_lib.write_config(workdir, config)
  print(f'wrote {workdir} ({config.task}, step 0; networks from the files: '
        f'{", ".join(sorted(params))}). Fine-tune: python -m jaxgan.main --workdir '
        f'{workdir}')
  return workdir


def main(argv):
  args, overrides = parse_args(argv)
  cli.setup_logging()
  convert(args.sources, args.experiment, args.workdir, overrides)


if __name__ == '__main__':
  sys.exit(cli.run(main))
