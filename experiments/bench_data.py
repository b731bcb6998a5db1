"""Input pipeline alone: images/s of `train_batches` on a real source, no model.

  python experiments/bench_data.py                         # maps, 64/256, batch 1/32
  python experiments/bench_data.py --source aligned:../shared/datasets/maps \
      --sizes 64,256 --batches 1,32 --seconds 20 --mode unpaired

For each (size, batch): builds the training stream exactly as the loop does
(`jaxgan.runs.train_stream`, the CycleGAN resize load_size = size * 286/256 then crop),
pulls batches for --seconds after --warmup batches (tf.data's start-up and autotuning
apart), and prints batches/s and images/s (images = batch x domains). Compare with
`experiments/bench_step.py`'s steps/s at the same size and batch: the pipeline must
outrun the step. Same machine, same hour, nothing else running.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import jax  # noqa: E402

from jaxgan import config as config_lib, runs  # noqa: E402
from jaxgan.tasks import task_class  # noqa: E402


def _csv(text):
  return [int(t) for t in text.split(',') if t]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--source', default='aligned:../shared/datasets/maps')
  p.add_argument('--experiment', default='cyclegan', help='whose data mode and config')
  p.add_argument('--sizes', type=_csv, default=[64, 256])
  p.add_argument('--batches', type=_csv, default=[1, 32])
  p.add_argument('--seconds', type=float, default=15.0, help='timed seconds per row')
  p.add_argument('--warmup', type=int, default=5, help='untimed batches per row')
  args = p.parse_args(argv)

  print(f'# bench_data {time.strftime("%Y-%m-%d %H:%M")} {args.source} '
        f'({args.experiment} data mode); {os.cpu_count()} CPUs; jax {jax.__version__}')
  print(f'{"size":>5} {"batch":>5} {"batches/s":>10} {"images/s":>10} {"ms/batch":>9}')
  for size in args.sizes:
    for batch in args.batches:
      config = config_lib.get_experiment(args.experiment)
      config.data.source = args.source
      config.data.image_size = size
      config.data.load_size = size * 286 // 256
      config.data.batch_size = batch
      source = runs.open_source(config)
      mode = task_class(config).data_mode
      stream = runs.train_stream(config, source, mode)
      batches = iter(stream)
      first = next(batches)
      domains = len(first)
      for _ in range(args.warmup - 1):
        next(batches)
      n, t0 = 0, time.perf_counter()
      while time.perf_counter() - t0 < args.seconds:
        next(batches)
        n += 1
      dt = time.perf_counter() - t0
      print(f'{size:>5} {batch:>5} {n / dt:>10.2f} {n * batch * domains / dt:>10.1f} '
            f'{1000 * dt / n:>9.1f}', flush=True)


if __name__ == '__main__':
  main()
