"""Evaluate a saved checkpoint on the test split:
`python -m jaxgan.evaluate --workdir DIR [--step N] [--weights FILE]`.

Writes `DIR/eval_STEP.json` with the task's scores (see `jaxgan.evaluators`: FID and
KID per direction, plus L1/PSNR/SSIM on paired data; FID of samples for DCGAN) and
prints it. `--num-images 0` (the default) uses the whole test split.
"""

import argparse
import json
import sys
from pathlib import Path

from jaxgan import cli
from jaxgan.errors import JaxganError


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m jaxgan.evaluate',
                              description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--step', type=int, default=None, help='checkpoint step (default: latest)')
  p.add_argument('--weights', default=None, help='FID Inception weights file')
  p.add_argument('--batch-size', type=int, default=None)
  p.add_argument('--num-images', type=int, default=0,
                 help='first N test images (or N samples) to score; 0: all')
  return p.parse_args(argv)


def main(argv):
  args = parse_args(argv)
  if args.num_images < 0:
    raise JaxganError(f'--num-images must be >= 0 (0: all), got {args.num_images}')
  cli.setup_logging()
  from jaxgan import evaluators, runs
  config, task, model, step = runs.restore_inference(Path(args.workdir), args.step)
  with config.unlocked():
    if args.weights:
      config.eval.weights = args.weights
    if args.batch_size:
      config.eval.batch_size = args.batch_size
    config.eval.num_images = args.num_images
  evaluator = evaluators.make_evaluator(task, runs.open_source(config), config,
                                        num_images=config.eval.num_images)
  results = {'step': step, **evaluator(model)}
  out = Path(args.workdir) / f'eval_{step}.json'
  out.write_text(json.dumps(results, indent=2, sort_keys=True))
  print(json.dumps(results, indent=2, sort_keys=True))
  print(f'wrote {out}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
