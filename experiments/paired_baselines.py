"""Reference scores for paired translation: what L1/PSNR/SSIM (and FID) a model that
learned nothing gets on an aligned test split, at a given resolution.

  python experiments/paired_baselines.py --source aligned:../shared/datasets/maps \
      --size 64 [--direction AtoB] [--fid]

Two do-nothing translators, scored exactly as `jaxgan.evaluate` scores a pix2pix model
(the same resize, the same `metrics.paired` and Inception features):

* identity: the output is the input image;
* mean: every output is the per-pixel mean of the training split's targets.

Prints a markdown table. `--fid` adds FID of the outputs against the real targets
(Inception features of every test image: minutes on a CPU).
"""

import argparse
import sys

import numpy as np

from jaxgan import data
from jaxgan.errors import JaxganError
from jaxgan.evaluators import _rgb
from jaxgan.metrics import features, feature_scores, paired


# direction -> (input domain, target domain)
_ENDS = {'AtoB': ('a', 'b'), 'BtoA': ('b', 'a')}


def _all(image_set, size: int) -> np.ndarray:
  return np.concatenate(list(data.eval_batches(image_set, 50, size=size)))


def main(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--source', required=True, help='a paired source, e.g. aligned:PATH')
  p.add_argument('--size', type=int, default=256, help='evaluation resolution')
  p.add_argument('--direction', choices=sorted(_ENDS), default='AtoB')
  p.add_argument('--fid', action='store_true', help='also compute FID (slow on CPU)')
  args = p.parse_args(argv)
  try:
    source = data.load_source(args.source, seed=0, image_size=args.size)
    test = source.task_domains('test' if source.has_split('test') else 'train',
                               'paired')
    train = source.task_domains('train', 'paired')
  except JaxganError as e:
    sys.exit(f'error: {e}')
  src, dst = _ENDS[args.direction]
  inputs = _all(getattr(test, src), args.size)
  targets = _all(getattr(test, dst), args.size)
  mean = _all(getattr(train, dst), args.size).mean(axis=0, keepdims=True)
  outputs = {'identity': inputs, 'mean': np.broadcast_to(mean, targets.shape)}

  if args.fid:
    extractor = features.Extractor(features.load_variables(None), batch_size=50)
    real_stats = feature_scores.statistics(extractor(iter(_rgb(targets)))['pool3'])
  print(f'{args.source} {args.direction}, {len(targets)} test pairs at {args.size}²')
  print('| translator | L1 | PSNR dB | SSIM |' + (' FID |' if args.fid else ''))
  print('|---|---|---|---|' + ('---|' if args.fid else ''))
  for name, out in outputs.items():
    scores = {k: float(np.mean(v))
              for k, v in paired.scores(_rgb(out), _rgb(targets)).items()}
    row = f'| {name} | {scores["l1"]:.4f} | {scores["psnr"]:.2f} | {scores["ssim"]:.4f} |'
    if args.fid:
      fake_stats = feature_scores.statistics(extractor(iter(_rgb(out)))['pool3'])
      row += f' {feature_scores.frechet_distance(*fake_stats, *real_stats):.1f} |'
    print(row)


if __name__ == '__main__':
  main(sys.argv[1:])
