"""Parameter counts of an experiment's networks, without training or data:
`python -m jaxgan.params --experiment NAME[:VARIANT] [--config.KEY=VALUE ...]`, or of
a workdir's (a run's, or one `jaxgan.convert` wrote): `--workdir W`.

Prints one row per network (trainable parameters only: batch-norm statistics, EMA
copies and buffers are not counted) and the total, from the shapes alone
(`jax.eval_shape`), so even full-size networks cost no memory.
"""

import argparse
import sys

from jaxgan import cli, config as config_lib


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog='python -m jaxgan.params', description=__doc__.split('\n')[0],
      epilog='Experiments: ' + ', '.join(config_lib.experiments()) + '.')
  which = parser.add_mutually_exclusive_group(required=True)
  which.add_argument('--experiment', help='NAME or NAME:VARIANT')
  which.add_argument('--workdir', help="a workdir: its config.json's networks")
  args, rest = parser.parse_known_args(argv)
  return args, config_lib.parse_overrides(rest)


def counts(config) -> dict[str, int]:
  """Network name -> number of trainable parameters, for `config`."""
  import jax
  from jaxgan import models
  from jaxgan.tasks import make_task
  task = make_task(config)
  shapes = jax.eval_shape(task.init_inference, jax.random.PRNGKey(0))
  # In the task's own order (pytrees sort dict keys).
  return {name: models.count_params(shapes.params[name]) for name in task.modules}


def main(argv):
  args, overrides = parse_args(argv)
  if args.workdir:
    from jaxgan import workdir
    config = workdir.read_config(args.workdir)
    name = f'{args.workdir} ({config.experiment})'
  else:
    config, name = config_lib.get_experiment(args.experiment), args.experiment
  for key, value in overrides:
    config_lib.apply_override(config, key, value)
  per_net = counts(config)
  d = config.data
  print(f'{name}: {d.image_size}x{d.image_size}x{d.channels} images')
  print('| network | parameters |')
  print('|---|---|')
  for name, n in per_net.items():
    print(f'| {name} | {n:,} |')
  print(f'| total | {sum(per_net.values()):,} |')


if __name__ == '__main__':
  sys.exit(cli.run(main))
