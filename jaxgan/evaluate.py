"""Evaluate a saved checkpoint on the full test splits:
`python -m jaxgan.evaluate --workdir DIR [--step N] [--weights FILE]`.

Writes `DIR/eval_STEP.json` with FID (and KID) per direction and prints it.
"""

import argparse
import json
import sys
from pathlib import Path

from jaxgan import cli


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m jaxgan.evaluate',
                              description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  p.add_argument('--weights', default=None, help='FID Inception weights file')
  p.add_argument('--batch-size', type=int, default=None)
  return p.parse_args(argv)


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  from jaxgan import evaluation, runs
  from jaxgan.train import open_source
  config, task, state, step = runs.restore(Path(args.workdir), args.step)
  with config.unlocked():
    if args.weights:
      config.eval.weights = args.weights
    if args.batch_size:
      config.eval.batch_size = args.batch_size
  evaluator = evaluation.TranslationEvaluator(task, open_source(config), config,
                                              num_images=0)
  results = {'step': step, **evaluator(state)}
  out = Path(args.workdir) / f'eval_{step}.json'
  out.write_text(json.dumps(results, indent=2, sort_keys=True))
  print(json.dumps(results, indent=2, sort_keys=True))
  print(f'wrote {out}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
