"""A/B speed comparison of jaxgan against its PyTorch baseline, runs alternating.

  python experiments/bench_compare.py --experiment cyclegan --sizes 64,128,256 \
      [--batches 1] [--dtypes float32,bfloat16] [--rounds 3] [--steps 5] [--warmup 1] \
      [--device cpu|gpu] [--channels 3] [--channels-last] [--busy-threshold 5] [--markdown]
  python experiments/bench_compare.py --experiment stylegan:demo --sizes 32 \
      --batches 16,32,64 --reference-dir PATH [--config.KEY=VALUE ...] [--rounds 3] ...

For every row (experiment, size, batch, dtype) it runs jaxgan
(experiments/bench_step.py --json) and the PyTorch baseline
(experiments/torch_baseline.py --json) alternately, A B A B ..., --rounds times each,
every run in its own subprocess, so slow drifts of the machine hit both sides alike.
Both time --steps training iterations after --warmup untimed ones (jaxgan also
compiles before its warm-up), so compilation and first-step costs stay out of the
steady state; each run reports its median seconds per iteration.

stylegan[:VARIANT]: the baseline is NVlabs stylegan2-ada-pytorch's own code (networks,
StyleGAN2Loss phases, its training loop's optimizer steps and G_ema update), imported
from the clone --reference-dir names, at jaxgan's config (the variant, the --config
overrides, which go to both sides, and --channels where given); CPU and float32 only.
Both sides report bench_step's 'iteration (amortized)': each step function (main,
g_reg, d_reg, ema) timed apart, its median divided by its interval and summed.

Both sides use every CPU this process may use:
torch.set_num_threads(len(os.sched_getaffinity(0))), and XLA's CPU thread pool, which
sizes itself by the same CPUs.

The table has, per row: each side's median over the rounds of the runs' medians, with
the min-max over rounds, and the ratio baseline / jaxgan (> 1: jaxgan is faster).

Busy detection: during every run, the CPU time the machine spent on the CPUs of this
process's affinity set (/proc/stat: user, nice, system, irq, softirq, steal) minus the
run's own CPU time (its rusage from wait4) and this script's is what other processes
used. If that exceeds --busy-threshold percent of those CPUs' capacity during any run
of a row (the whole run, compilation included), the row's ratio is replaced by
"busy (others used X% CPU)" and the script exits with status 1 at the end (also when a
run fails). With --device gpu, only CPU contention is detected.

Needs PyTorch: pip install -e '.[bench]'.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import torch_baseline  # noqa: E402  (a sibling script, not a package)

PROG = 'bench_compare'
CLK_TCK = os.sysconf('SC_CLK_TCK')


def _csv(kind):
  return lambda text: [kind(t) for t in text.split(',') if t]


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python experiments/bench_compare.py',
                              description=__doc__.split('\n')[0])
  p.add_argument('--experiment', default='cyclegan',
                 help=f"{', '.join(torch_baseline.EXPERIMENTS)} or stylegan[:VARIANT]")
  p.add_argument('--sizes', type=_csv(int), default=[64, 128, 256])
  p.add_argument('--batches', type=_csv(int), default=[1])
  p.add_argument('--dtypes', type=_csv(str), default=['float32'])
  p.add_argument('--rounds', type=int, default=3, help='A B pairs per row (>= 3 for a '
                 'comparison; fewer for a smoke run)')
  p.add_argument('--steps', type=int, default=5, help='timed iterations per run')
  p.add_argument('--warmup', type=int, default=1, help='untimed iterations per run')
  p.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
  p.add_argument('--channels', type=int, default=None,
                 help="image channels, both sides (default 3; stylegan: the config's)")
  p.add_argument('--channels-last', action='store_true',
                 help='the baseline in torch.channels_last memory format')
  p.add_argument('--busy-threshold', type=float, default=5.0,
                 help="percent of the CPUs' capacity other processes may use in a run")
  p.add_argument('--timeout', type=float, default=3600, help='seconds per run')
  p.add_argument('--reference-dir', default='',
                 help=f'stylegan: a clone of {torch_baseline.REFERENCE_URL}')
  p.add_argument('--markdown', action='store_true', help='a markdown table')
  args, config_args = p.parse_known_args(argv)
  for dtype in args.dtypes:
    if dtype not in torch_baseline.DTYPES:
      p.error(f"dtype {dtype!r}; valid: {', '.join(torch_baseline.DTYPES)}")
  if args.rounds < 1 or args.steps < 1 or args.warmup < 0:
    p.error('--rounds and --steps must be >= 1, --warmup >= 0')
  try:
    name, _ = torch_baseline.split_experiment(args.experiment)
  except torch_baseline.BaselineError as e:
    p.error(str(e))
  args.stylegan = name == torch_baseline.STYLEGAN
  args.overrides = []
  if not args.stylegan:
    if config_args:
      p.error(f"unrecognized arguments: {' '.join(config_args)} (--config.KEY=VALUE "
              'overrides are for stylegan only)')
    if args.channels is None:
      args.channels = 3
  else:
    if args.dtypes != ['float32'] or args.device != 'cpu' or args.channels_last:
      p.error('the stylegan baseline runs the reference on the CPU in float32 '
              '(--device cpu --dtypes float32, no --channels-last)')
    try:
      args.overrides = torch_baseline.parse_config_args(config_args)
    except torch_baseline.BaselineError as e:
      p.error(str(e))
  return args


# -- machine -----------------------------------------------------------------------


def cpu_set() -> set[int]:
  try:
    return set(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return set(range(os.cpu_count() or 1))


def busy_ticks(cpus: set[int]) -> int:
  """Busy clock ticks so far of the CPUs `cpus` (/proc/stat; guest time is in user)."""
  total = 0
  with open('/proc/stat') as f:
    for line in f:
      name, *fields = line.split()
      if not name.startswith('cpu') or name == 'cpu':
        continue
      if int(name[3:]) in cpus:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        total += user + nice + system + irq + softirq + steal
  return total


def cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown CPU'


def version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return 'not installed'


def header(args, cpus, channels, reference='') -> str:
  """The table's header lines; `reference`: the stylegan baseline's line."""
  now = datetime.datetime.now().astimezone().isoformat(timespec='seconds')
  overrides = ''.join(f' --config.{k}={v}' for k, v in args.overrides)
  return (f'# {PROG} {now} on {socket.gethostname()}: {cpu_model()}, '
          f'{os.cpu_count()} CPUs ({len(cpus)} usable: both sides use {len(cpus)} '
          f'threads); device {args.device}; jax {version("jax")}, torch '
          f'{version("torch")}, python {platform.python_version()}\n'
          f'# {args.experiment}{overrides}, {channels} channels; per run the median '
          f's/iteration of {args.steps} steps after {args.warmup} warm-up; cells: median '
          f'over {args.rounds} round(s) (min-max); ratio = baseline / jaxgan (> 1: '
          'jaxgan faster)' + (f'\n# {reference}' if reference else ''))


def reference_line(args) -> str:
  """The stylegan baseline's provenance: the reference checkout and its commit."""
  path = os.path.realpath(args.reference_dir)
  commit = torch_baseline.reference_commit(args.reference_dir)
  return (f'baseline: NVlabs stylegan2-ada-pytorch\'s own code from {path}, commit '
          f"{commit or 'unknown (not a git checkout)'}; both sides: iteration amortized "
          'over the lazy intervals, each step function timed apart')


def check_stylegan(args) -> int:
  """Fails now (one line), not after an hour of runs, where the reference directory
  or a (size, batch) setting will not do; returns the config's image channels."""
  torch_baseline.check_reference_dir(args.reference_dir)
  torch_baseline.jax_on_cpu()
  for size in args.sizes:
    for batch in args.batches:
      config = torch_baseline.stylegan_config(args.experiment, args.overrides, size,
                                              batch, args.channels)
      torch_baseline.stylegan_reference_kwargs(config)
  return config.data.channels


# -- runs --------------------------------------------------------------------------


def commands(args, size, batch, dtype, threads, first_round):
  """(jaxgan argv, baseline argv) for one row."""
  exp = args.experiment
  jax_cmd = [sys.executable, str(HERE / 'bench_step.py'), '--experiment', exp,
             '--sizes', str(size), '--batches', str(batch), '--dtypes', dtype,
             '--steps', str(args.steps), '--warmup', str(args.warmup), '--json']
  torch_cmd = [sys.executable, str(HERE / 'torch_baseline.py'), '--experiment', exp,
               '--size', str(size), '--batch', str(batch), '--dtype', dtype,
               '--steps', str(args.steps), '--warmup', str(args.warmup),
               '--threads', str(threads),
               '--device', 'cuda' if args.device == 'gpu' else 'cpu', '--json']
  if args.channels is not None:  # stylegan without --channels: the config's
    jax_cmd.append(f'--config.data.channels={args.channels}')
    torch_cmd += ['--channels', str(args.channels)]
  overrides = [f'--config.{key}={value}' for key, value in args.overrides]
  jax_cmd += overrides
  torch_cmd += overrides
  if args.stylegan:  # the runs' working directory is the repository's
    torch_cmd += ['--reference-dir', os.path.realpath(args.reference_dir)]
  generator = '' if args.stylegan else torch_baseline.Settings(
      experiment=exp, size=size).generator
  if generator:
    jax_cmd.append(f'--config.model.generator={generator}')
    torch_cmd += ['--generator', generator]
  if args.channels_last:
    torch_cmd.append('--channels-last')
  if not first_round:  # The parameter counts were checked against jaxgan's already.
    torch_cmd.append('--skip-count-check')
  return jax_cmd, torch_cmd


def run_one(cmd, env, cpus, timeout) -> dict:
  """Runs `cmd`; its JSON result (or None), rc, wall seconds, others' CPU percent."""
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    own0 = os.times()
    ticks0, t0 = busy_ticks(cpus), time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
    while True:  # wait4, for the child's own CPU time (all its threads)
      pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
      if pid:
        break
      if time.monotonic() - t0 > timeout:
        proc.kill()
        pid, status, usage = os.wait4(proc.pid, 0)
        break
      time.sleep(0.1)
    wall, ticks1, own1 = time.monotonic() - t0, busy_ticks(cpus), os.times()
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    timed_out = wall > timeout
    out.seek(0)
    err.seek(0)
    stdout = out.read().decode(errors='replace')
    stderr = err.read().decode(errors='replace')
  child_s = usage.ru_utime + usage.ru_stime
  own_s = (own1.user + own1.system) - (own0.user + own0.system)
  others_s = max(0.0, (ticks1 - ticks0) / CLK_TCK - child_s - own_s)
  result = None
  for line in stdout.splitlines():
    if line.startswith('{'):
      result = json.loads(line)
  error = ''
  if timed_out:
    error = f'timed out after {timeout:.0f} s'
  elif rc or result is None:
    tail = [line for line in stderr.strip().splitlines() if line.strip()][-1:]
    error = f'exit status {rc}: ' + (tail[0] if tail else 'no result line')
  elif not result.get('finite', True):
    error = 'non-finite losses'
  return dict(result=result, rc=rc, wall_s=wall, child_cpu_s=child_s,
              others_pct=100 * others_s / (wall * len(cpus)), error=error)


def fmt_cell(values) -> str:
  if not values:
    return 'n/a'
  return f'{statistics.median(values):.4f} ({min(values):.4f}-{max(values):.4f})'


def bench_row(args, size, batch, dtype, cpus, log) -> dict:
  threads = len(cpus)
  base_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
  envs = {'jaxgan': dict(base_env, JAX_PLATFORMS='cuda' if args.device == 'gpu' else 'cpu'),
          'baseline': dict(base_env, JAX_PLATFORMS='cpu')}  # its jax only counts params
  label = f'{args.experiment} {size} b{batch} {dtype}'
  times = {'jaxgan': [], 'baseline': []}
  others, errors = [], []
  for r in range(args.rounds):
    jax_cmd, torch_cmd = commands(args, size, batch, dtype, threads, r == 0)
    for side, cmd in (('jaxgan', jax_cmd), ('baseline', torch_cmd)):
      run = run_one(cmd, envs[side], cpus, args.timeout)
      others.append(run['others_pct'])
      if run['error']:
        errors.append(f"{side}: {run['error']}")
        status = f"FAILED ({run['error']})"
      else:
        times[side].append(run['result']['step_s'])
        status = f"{run['result']['step_s']:.4f} s/iteration"
      log(f"[{label}] round {r + 1}/{args.rounds} {side}: {status}; {run['wall_s']:.0f} s, "
          f"own CPU {run['child_cpu_s']:.0f} s, others {run['others_pct']:.1f}% CPU")
  if errors:
    ratio = 'failed (' + '; '.join(dict.fromkeys(errors)) + ')'
  elif max(others) > args.busy_threshold:
    ratio = f'busy (others used {max(others):.1f}% CPU)'
  else:
    ratio = (f"{statistics.median(times['baseline']) / statistics.median(times['jaxgan']):.2f}"
             'x')
  return dict(row=label, jaxgan=fmt_cell(times['jaxgan']),
              baseline=fmt_cell(times['baseline']), ratio=ratio,
              ok=not errors and max(others) <= args.busy_threshold)


def table(rows, markdown: bool) -> str:
  head = ('row', 'jaxgan s/iteration', 'baseline s/iteration', 'baseline/jaxgan')
  cells = [head] + [(r['row'], r['jaxgan'], r['baseline'], r['ratio']) for r in rows]
  if markdown:
    lines = ['| ' + ' | '.join(c) + ' |' for c in cells]
    lines.insert(1, '|' + '---|' * len(head))
    return '\n'.join(lines)
  widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
  lines = ['  '.join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip()
           for c in cells]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def main(argv):
  args = parse_args(argv)
  torch_baseline.require_torch()
  channels, reference = args.channels, ''
  try:  # Bad settings fail now, not after an hour of runs.
    if args.stylegan:
      channels = check_stylegan(args)
      reference = reference_line(args)
    else:
      for size in args.sizes:
        torch_baseline.Settings(experiment=args.experiment, size=size,
                                channels=args.channels)
  except torch_baseline.BaselineError as e:
    raise SystemExit(f'{PROG}: error: {e}') from None
  cpus = cpu_set()
  print(header(args, cpus, channels, reference), flush=True)

  def log(message):
    print(message, file=sys.stderr, flush=True)

  rows = [bench_row(args, size, batch, dtype, cpus, log)
          for size in args.sizes for batch in args.batches for dtype in args.dtypes]
  print(table(rows, args.markdown), flush=True)
  bad = [r['row'] for r in rows if not r['ok']]
  if bad:
    print(f"{PROG}: no clean comparison for {', '.join(bad)} (busy machine or failed "
          'run; see the table)', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
