"""Train a GAN: `python -m jaxgan.main --experiment NAME[:VARIANT] --workdir DIR
[--config.KEY=VALUE ...]`. Parses flags, builds the config, hands it to the loop.
Without --experiment, the run in DIR continues with its own config.json (e.g. a
workdir written by `jaxgan.convert`), the overrides applied to it.

Several processes (one per host, or several on one machine) train one model when
each is started with the same command plus `--coordinator_address HOST:PORT
--num_processes N --process_id I` (I = 0..N-1; process 0 serves HOST:PORT), or
under SLURM (`srun`) / Open MPI, where JAX finds those values itself."""

import argparse
import os
import sys
from pathlib import Path

from jaxgan import cli, config as config_lib
from jaxgan.errors import JaxganError


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog='python -m jaxgan.main', description=__doc__.split('\n')[0],
      epilog='Experiments: ' + ', '.join(config_lib.experiments()) +
      '. Any config value can be overridden, e.g. --config.optimizer.lr=1e-4.')
  parser.add_argument('--experiment', help='NAME or NAME:VARIANT; may be left out to '
                      'continue the run in --workdir (its config.json is the config)')
  parser.add_argument('--workdir', required=True,
                      help='checkpoints, TensorBoard events, samples; resumes if present')
  parser.add_argument('--distributed', action='store_true',
                      help='call jax.distributed.initialize() (multi-process launch); '
                      'set automatically under SLURM/Open MPI/JAX_COORDINATOR_ADDRESS')
  parser.add_argument('--coordinator_address', metavar='HOST:PORT',
                      help='multi-process launch by hand: the address process 0 '
                      'listens on (default $JAX_COORDINATOR_ADDRESS); with '
                      '--num_processes and --process_id')
  parser.add_argument('--num_processes', type=int, metavar='N',
                      help='number of processes of the run')
  parser.add_argument('--process_id', type=int, metavar='I',
                      help="this process's index, 0..N-1")
  args, rest = parser.parse_known_args(argv)
  _check_distributed(args)
  return args, config_lib.parse_overrides(rest)


def _check_distributed(args) -> None:
  """One line per launch mistake, before JAX loads or any process waits."""
  given = [f'--{k}' for k in ('coordinator_address', 'num_processes', 'process_id')
           if getattr(args, k) is not None]
  if not given:
    return
  if args.coordinator_address is None:
    args.coordinator_address = os.environ.get('JAX_COORDINATOR_ADDRESS') or None
  missing = [f'--{k}' for k in ('coordinator_address', 'num_processes', 'process_id')
             if getattr(args, k) is None]
  if missing:
    raise JaxganError(f'{" and ".join(given)} also need{"s" * (len(given) == 1)} '
                      f'{" and ".join(missing)} (a launch by hand gives all three; '
                      'under SLURM or Open MPI give none)')
  host, _, port = args.coordinator_address.rpartition(':')
  if not host or not port.isdigit() or not 0 < int(port) < 65536:
    raise JaxganError(f'--coordinator_address={args.coordinator_address} is not '
                      'HOST:PORT (e.g. localhost:12345 or node001:12345)')
  if args.num_processes < 1:
    raise JaxganError(f'--num_processes={args.num_processes} must be at least 1')
  if not 0 <= args.process_id < args.num_processes:
    raise JaxganError(f'--process_id={args.process_id} must be in 0..'
                      f'{args.num_processes - 1} (--num_processes={args.num_processes})')


def main(argv):
  args, overrides = parse_args(argv)
  if args.experiment is None:
    from jaxgan import workdir as workdir_lib
    if not (Path(args.workdir) / workdir_lib.CONFIG_FILE).is_file():
      raise JaxganError(f'--experiment is needed: {args.workdir} holds no run to continue '
                        f'(no {workdir_lib.CONFIG_FILE})')
    config = workdir_lib.read_config(args.workdir)
  else:
    config = config_lib.get_experiment(args.experiment)
  for key, value in overrides:
    config_lib.apply_override(config, key, value)
  cli.setup_logging()
  with cli.StopRequest() as stop:
    # Imported late so that `--help` and config errors answer without loading JAX/TF.
    from jaxgan import train
    train.train_and_evaluate(config, args.workdir, stop, distributed=dict(
        force=args.distributed, coordinator_address=args.coordinator_address,
        num_processes=args.num_processes, process_id=args.process_id))


if __name__ == '__main__':
  sys.exit(cli.run(main))
