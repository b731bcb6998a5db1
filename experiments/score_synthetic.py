"""Score a CycleGAN trained on `data.source=synthetic` against the exact ground truth.

  python experiments/score_synthetic.py --workdir runs/cyclegan_demo [--step N]

The synthetic test split keeps the true pairs (B = the negative of A), so G(A) and
F(B) can be scored exactly: mean absolute error in 0..255 grey levels and PSNR, next to
the same numbers for the do-nothing translation (output = input) as a baseline.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from jaxgan.data import synthetic
from jaxgan.translate import load_generator


def score(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
  err = pred.astype(np.float64) - true.astype(np.float64)
  mse = float(np.mean(err ** 2))
  return float(np.mean(np.abs(err))), 10 * np.log10(255.0 ** 2 / max(mse, 1e-12))


def main(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--workdir', required=True)
  p.add_argument('--step', type=int, default=None)
  p.add_argument('--num', type=int, default=64)
  args = p.parse_args(argv)
  config = json.loads((Path(args.workdir) / 'config.json').read_text())
  if config['data']['source'] != 'synthetic':
    sys.exit(f"{args.workdir} was not trained on synthetic data")
  size = config['data']['image_size']
  a, b = synthetic.synthetic_pairs(config['seed'], args.num, size, 'test')
  print('| direction | step | MAE (0-255) | PSNR dB | identity MAE | identity PSNR |')
  print('|---|---|---|---|---|---|')
  for direction, src, dst in (('AtoB', a, b), ('BtoA', b, a)):
    translate, step = load_generator(Path(args.workdir), direction, args.step)
    pred = np.stack([translate(x) for x in src])
    mae, psnr = score(pred, dst)
    base_mae, base_psnr = score(src, dst)
    print(f'| {direction} | {step} | {mae:.1f} | {psnr:.1f} | {base_mae:.1f} | {base_psnr:.1f} |')


if __name__ == '__main__':
  main(sys.argv[1:])
