"""Benchmark a GAN task's jitted step functions: compile time apart from steady state.

  python experiments/bench_step.py                       # CPU targets: 64/128/256, batch 1, fp32
  python experiments/bench_step.py --sizes 64,128,256 --batches 1,4 --dtypes float32,bfloat16

Full-size networks unless overridden (--config.model.ngf=16 ...). For every
(size, batch, dtype) and every step function of the task (main, lazy regularisers,
EMA; then the iteration amortized over their intervals): lower + compile time, XLA's
FLOP count of the step, the compiled step's memory (argument/output/temp bytes from `memory_analysis()`), then the median
seconds per step over --steps timed steps after --warmup, images/s, achieved GFLOP/s.
Data is random (no input pipeline in the timing); the state is donated as in training.
With --json, stdout is one JSON line per (size, batch, dtype) instead of the table: the
iteration's figures (the amortized iteration when the task has several step functions,
else its one step), for experiments/bench_compare.py and experiments/gpu_table.py; the
header line goes to stderr. The JSON also has the compiled step's memory (temp_mb,
arg_mb, out_mb, alias_mb and XLA's own peak estimate xla_peak_mb, `memory_analysis()`'s
peak_memory_in_bytes, 0 where the backend has none: each the largest over the step
functions), gflop_hlo (the cost analysis of the lowered, not yet optimised HLO,
beside gflop, the compiled module's) and peak_mb, the device's
`memory_stats()['peak_bytes_in_use']` after the setting (cumulative over the process,
so exact for one setting per process; null where the backend keeps no statistics).

TensorFlow is not needed: the script feeds random arrays, and `jaxgan.runs` imports the
tf.data layer only where it is used (the GPU machine's image has no TensorFlow).
"""

import argparse
import json
import statistics
import sys
import time

import jax
import numpy as np


from jaxgan import cli, config as config_lib, runs, sharding
from jaxgan.tasks import make_task


def _csv(kind):
  return lambda text: [kind(t) for t in text.split(',') if t]


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='cyclegan')
  p.add_argument('--sizes', type=_csv(int), default=[64, 128, 256])
  p.add_argument('--batches', type=_csv(int), default=[1])
  p.add_argument('--dtypes', type=_csv(str), default=['float32'])
  p.add_argument('--steps', type=int, default=5, help='timed steps per setting')
  p.add_argument('--warmup', type=int, default=1)
  p.add_argument('--json', action='store_true',
                 help='one JSON line per setting (the iteration) instead of the table')
  args, rest = p.parse_known_args(argv)
  if args.steps < 1 or args.warmup < 0:
    p.error(f'--steps must be >= 1 and --warmup >= 0 (got {args.steps}, {args.warmup})')
  return args, config_lib.parse_overrides(rest)


def _time(compiled, state, data, steps, warmup):
  """(median, min, max seconds, final state, metrics) of `steps` timed calls."""
  for _ in range(warmup):
    state, _ = compiled(state, data)
  jax.block_until_ready(state)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, data)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t0)
  return statistics.median(times), min(times), max(times), state, metrics


def bench_one(base, size, batch, dtype, steps, warmup):
  """One row per step function of the task (the loop's own jitted functions), then
  the amortized iteration: the sum of each function's median / its interval."""
  config = config_lib.from_json(config_lib.to_json(base))
  config.data.image_size = config.data.load_size = size
  config.data.batch_size = batch
  config.dtype = dtype
  mesh = sharding.make_mesh()
  task = make_task(config, steps_per_epoch=1000)
  trainer = runs.CompiledSteps(task, config, mesh)
  state = trainer.init()
  rng = np.random.default_rng(0)
  keys = 'a' if task.data_mode == 'single' else 'ab'
  shape = (batch, size, size, config.data.channels)
  data = trainer.put({k: rng.uniform(-1, 1, shape).astype(np.float32) for k in keys})
  rows, iteration = [], dict(compile_s=0.0, step_s=0.0, min_s=0.0, max_s=0.0, gflop=0.0,
                             gflop_hlo=0.0, temp_mb=0.0, arg_mb=0.0, out_mb=0.0,
                             alias_mb=0.0, xla_peak_mb=0.0, finite=True)
  for name, (step, every) in trainer.steps.items():
    t0 = time.perf_counter()
    lowered = step.lower(state, data)
    compiled = lowered.compile()
    compile_s = time.perf_counter() - t0
    flops = _flops(compiled)
    flops_hlo = _flops(lowered)  # before XLA's rewrites (convolutions as such)
    mem = compiled.memory_analysis()
    med, lo, hi, state, metrics = _time(compiled, state, data, steps, warmup)
    finite = all(np.isfinite(float(v)) for v in jax.device_get(metrics).values())
    row = dict(name=f'{name} (every {every})', compile_s=compile_s, step_s=med, min_s=lo,
               max_s=hi, gflop=flops / 1e9, gflop_hlo=flops_hlo / 1e9,
               temp_mb=getattr(mem, 'temp_size_in_bytes', 0) / 2**20,
               arg_mb=getattr(mem, 'argument_size_in_bytes', 0) / 2**20,
               out_mb=getattr(mem, 'output_size_in_bytes', 0) / 2**20,
               alias_mb=getattr(mem, 'alias_size_in_bytes', 0) / 2**20,
               xla_peak_mb=getattr(mem, 'peak_memory_in_bytes', 0) / 2**20, finite=finite)
    rows.append(row)
    for key in ('step_s', 'min_s', 'max_s', 'gflop', 'gflop_hlo'):
      iteration[key] += row[key] / every
    iteration['compile_s'] += compile_s
    iteration['temp_mb'] = max(iteration['temp_mb'], row['temp_mb'])
    iteration['arg_mb'] = max(iteration['arg_mb'], row['arg_mb'])
    for key in ('out_mb', 'alias_mb', 'xla_peak_mb'):
      iteration[key] = max(iteration[key], row[key])
    iteration['finite'] &= finite
  if len(rows) > 1:
    rows.append(dict(iteration, name='iteration (amortized)'))
  for row in rows:
    row.update(size=size, batch=batch, dtype=dtype, img_s=batch / row['step_s'],
               gflops=row['gflop'] / row['step_s'])
  return rows


def _flops(stage):
  """The FLOP count of XLA's cost analysis of a Lowered or Compiled, or NaN."""
  try:
    cost = stage.cost_analysis()
  except Exception:  # pylint: disable=broad-except  (not every backend has one)
    return float('nan')
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', float('nan'))) if cost else float('nan')


def _peak_mb(device):
  """The device allocator's peak MiB so far in this process, or None."""
  try:
    stats = device.memory_stats()
  except Exception:  # pylint: disable=broad-except  (unimplemented on some backends)
    return None
  if not stats or 'peak_bytes_in_use' not in stats:
    return None
  return stats['peak_bytes_in_use'] / 2**20


def main(argv):
  args, overrides = parse_args(argv)
  base = config_lib.get_experiment(args.experiment)
  for key, value in overrides:
    config_lib.apply_override(base, key, value)
  from jaxgan import params
  dev = jax.devices()[0]
  nets = ', '.join(f'{n} {c:,}' for n, c in params.counts(base).items())
  print(f'# {args.experiment}: parameters {nets} (at the config\'s image size); '
        f'{jax.device_count()} x {dev.device_kind} ({dev.platform}); jax '
        f'{jax.__version__}; median of {args.steps} steps after {args.warmup} warm-up',
        file=sys.stderr if args.json else sys.stdout, flush=True)
  if args.json:
    for size in args.sizes:
      for batch in args.batches:
        for dtype in args.dtypes:
          r = bench_one(base, size, batch, dtype, args.steps, args.warmup)[-1]
          print(json.dumps(dict(
              side='jaxgan', experiment=args.experiment, size=size, batch=batch,
              dtype=dtype, row=r['name'], step_s=r['step_s'], min_s=r['min_s'],
              max_s=r['max_s'], img_s=r['img_s'], compile_s=r['compile_s'],
              gflop=r['gflop'], gflop_hlo=r['gflop_hlo'], finite=bool(r['finite']),
              steps=args.steps, warmup=args.warmup, platform=dev.platform,
              jax=jax.__version__,
              temp_mb=r['temp_mb'], arg_mb=r['arg_mb'], out_mb=r['out_mb'],
              alias_mb=r['alias_mb'], xla_peak_mb=r['xla_peak_mb'],
              peak_mb=_peak_mb(dev), device_kind=dev.device_kind)),
                flush=True)
    return
  header = ('size', 'batch', 'dtype', 'step function', 'compile_s', 'step_s', 'min_s',
            'max_s', 'img/s', 'GFLOP/step', 'GFLOP/s', 'temp_MiB', 'args_MiB')
  # Rows are printed as they finish, so an interrupted run keeps what it measured.
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header), flush=True)
  for size in args.sizes:
    for batch in args.batches:
      for dtype in args.dtypes:
        for r in bench_one(base, size, batch, dtype, args.steps, args.warmup):
          print(f"| {r['size']} | {r['batch']} | {r['dtype']} | {r['name']} | "
                f"{r['compile_s']:.1f} | {r['step_s']:.3f} | {r['min_s']:.3f} | "
                f"{r['max_s']:.3f} | {r['img_s']:.2f} | {r['gflop']:.0f} | "
                f"{r['gflops']:.0f} | {r['temp_mb']:.0f} | {r['arg_mb']:.0f} |"
                + ('' if r['finite'] else ' NON-FINITE'), flush=True)


if __name__ == '__main__':
  sys.exit(cli.run(main))  # a JaxganError (bad flag, unknown key): one line, exit 1
