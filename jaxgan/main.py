"""Train a GAN: `python -m jaxgan.main --experiment NAME[:VARIANT] --workdir DIR
[--config.KEY=VALUE ...]`. Parses flags, builds the config, hands it to the loop."""

import argparse
import sys

from jaxgan import cli, config as config_lib


def parse_args(argv):
  parser = argparse.ArgumentParser(
      prog='python -m jaxgan.main', description=__doc__.split('\n')[0],
      epilog='Experiments: ' + ', '.join(sorted(config_lib.EXPERIMENTS)) +
      '. Any config value can be overridden, e.g. --config.optimizer.lr=1e-4.')
  parser.add_argument('--experiment', required=True, help='NAME or NAME:VARIANT')
  parser.add_argument('--workdir', required=True,
                      help='checkpoints, TensorBoard events, samples; resumes if present')
  parser.add_argument('--distributed', action='store_true',
                      help='call jax.distributed.initialize() (multi-process launch); '
                      'set automatically under SLURM/Open MPI/JAX_COORDINATOR_ADDRESS')
  args, rest = parser.parse_known_args(argv)
  return args, config_lib.parse_overrides(rest)


def main(argv):
  args, overrides = parse_args(argv)
  config = config_lib.get_experiment(args.experiment)
  for key, value in overrides:
    config_lib.apply_override(config, key, value)
  cli.setup_logging()
  with cli.StopRequest() as stop:
    # Imported late so that `--help` and config errors answer without loading JAX/TF.
    from jaxgan import runs, sharding, train
    runs.check_config(config)  # every problem, before any process waits for another
    sharding.maybe_initialize_distributed(force=args.distributed)
    train.train_and_evaluate(config, args.workdir, stop)


if __name__ == '__main__':
  sys.exit(cli.run(main))
