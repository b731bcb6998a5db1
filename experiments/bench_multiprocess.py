"""Step time and losses of one run as 1 process x 8 devices and as 2 processes x 4.

  python experiments/bench_multiprocess.py                     # cyclegan:smoke, 20 steps
  python experiments/bench_multiprocess.py --steps 30 --config.model.ngf=16

Both settings train the same model on the same global batches with
`python -m jaxgan.main` (fake CPU devices: XLA_FLAGS=--xla_force_host_platform_device_count;
the two processes meet through `--coordinator_address localhost:PORT`, CPU collectives
over Gloo), one setting after the other. Timing: the median, min and max seconds per
step and the mean (their total over their count) over the steps after --warmup (from
`train/steps_per_sec`, logged every step; each step's metrics are read once the next
step is dispatched, so this is the steady state, no compile; images/s from the mean),
and the wall time of the whole command (start-up, compiles, steps). Losses:
for every step, the largest |difference| between the two runs over all `train/loss_*`
scalars (TensorBoard events of process 0).

Defaults: SGD, lr 1e-4, constant (as tests/test_multiprocess.py: the differences are
the rounding of another reduction order, which grows a few steps in; Adam's sign-like
first updates would amplify it at once), global batch 8 on 16 synthetic images. Any
`--config.KEY=VALUE` is passed on to both runs. On a shared machine the figures are
indicative only.
"""

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULTS = ['--config.data.batch_size=8', '--config.data.synthetic_size=16',
            '--config.optimizer.name=sgd', '--config.optimizer.lr=1e-4',
            '--config.optimizer.schedule=constant']


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='cyclegan:smoke')
  p.add_argument('--steps', type=int, default=20)
  p.add_argument('--warmup', type=int, default=3,
                 help='steps left out of the timing (compile, first dispatches)')
  p.add_argument('--keep', metavar='DIR', help='write the workdirs and logs here')
  return p.parse_known_args(argv)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  env = dict(os.environ)
  env['XLA_FLAGS'] = f'--xla_force_host_platform_device_count={devices}'
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  return env


def _run(cmds_envs, logs, timeout=1200) -> float:
  """Runs the commands side by side; their wall time. Raises if one fails."""
  t0 = time.monotonic()
  procs, files = [], []
  try:
    for (cmd, env), log in zip(cmds_envs, logs):
      files.append(open(log, 'w'))
      procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=files[-1],
                                    stderr=subprocess.STDOUT))
    for p, log in zip(procs, logs):
      if p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0))):
        raise SystemExit(f'{" ".join(p.args[:6])} ... failed; see {log}:\n'
                         + Path(log).read_text(errors='replace')[-3000:])
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    for f in files:
      f.close()
  return time.monotonic() - t0


def _scalars(workdir: Path) -> dict[int, dict[str, float]]:
  import tensorflow as tf
  out = {}
  paths = list(workdir.glob('events.out.tfevents.*'))
  if len(paths) != 1:
    raise SystemExit(f'expected one events file in {workdir}, found {len(paths)}')
  for event in tf.compat.v1.train.summary_iterator(str(paths[0])):
    for value in event.summary.value:
      if value.tag.startswith('train/'):
        out.setdefault(event.step, {})[value.tag] = float(tf.make_ndarray(value.tensor))
  return out


def main(argv):
  args, overrides = parse_args(argv)
  root = Path(args.keep or tempfile.mkdtemp(prefix='bench-multiprocess-'))
  root.mkdir(parents=True, exist_ok=True)
  common = ['--experiment', args.experiment, *DEFAULTS, *overrides,
            f'--config.train.num_steps={args.steps}', '--config.train.log_every=1',
            '--config.train.sample_every=0', f'--config.train.checkpoint_every={args.steps}',
            '--config.eval.every=0']
  main_cmd = [sys.executable, '-m', 'jaxgan.main']
  settings = {}
  print(f'{args.experiment}, {args.steps} steps ({args.warmup} warm-up), workdirs in '
        f'{root}', file=sys.stderr)

  one = root / 'one_by_8'
  wall = _run([([*main_cmd, '--workdir', str(one), *common], _env(8))],
              [root / 'one_by_8.log'])
  settings['1 process x 8 devices'] = (one, wall)

  two = root / 'two_by_4'
  port = _free_port()
  wall = _run([([*main_cmd, '--workdir', str(two), *common, '--coordinator_address',
                 f'localhost:{port}', '--num_processes', '2', '--process_id', str(i)],
                _env(4)) for i in range(2)],
              [root / f'two_by_4_p{i}.log' for i in range(2)])
  settings['2 processes x 4 devices'] = (two, wall)

  scalars = {name: _scalars(workdir) for name, (workdir, _) in settings.items()}
  print(f'\n{"setting":<26}{"median s/step":>14}{"mean":>8}{"min":>8}{"max":>8}'
        f'{"images/s":>10}{"run wall s":>12}')
  for name, (_, wall) in settings.items():
    s = scalars[name]
    times = [1.0 / s[k]['train/steps_per_sec'] for k in sorted(s)
             if k > args.warmup and s[k].get('train/steps_per_sec')]
    med, mean = statistics.median(times), statistics.fmean(times)
    last = s[max(s)]
    batch = last['train/images_per_sec'] / last['train/steps_per_sec']
    print(f'{name:<26}{med:>14.3f}{mean:>8.3f}{min(times):>8.3f}{max(times):>8.3f}'
          f'{batch / mean:>10.1f}{wall:>12.1f}')

  a, b = scalars.values()
  print(f'\n{"step":>4}  max |loss difference| (over train/loss_*)  max relative')
  for step in sorted(set(a) & set(b)):
    tags = [t for t in a[step] if t.startswith('train/loss_') and t in b[step]]
    if not tags:
      continue
    diff = max(abs(a[step][t] - b[step][t]) for t in tags)
    rel = max(abs(a[step][t] - b[step][t]) / max(abs(a[step][t]), 1e-12) for t in tags)
    print(f'{step:>4}  {diff:>10.2e}{"":>32}{rel:>10.2e}')


if __name__ == '__main__':
  main(sys.argv[1:])
