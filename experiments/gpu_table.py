"""jaxgan against its PyTorch baseline on one GPU: one table, written as it goes.

  python experiments/gpu_table.py --out /tmp/gpu_check_out          # the full grid
  python experiments/gpu_table.py --device cpu --experiments cyclegan --sizes 32 \
      --batches 1 --dtypes float32 --steps 1 --warmup 1 --out /tmp/t  # a CPU smoke test

Usually run through experiments/gpu_check.sh. For every row (experiment, size, batch,
dtype) it runs jaxgan's step (experiments/bench_step.py --json) and then the baseline's
iteration (experiments/torch_baseline.py --json), each in its own subprocess (so the
device's peak-memory statistics are the row's own) under --row-timeout-s. A side that
fails or times out leaves its cells empty and one line of reason in the notes; the grid
goes on. Rows run most important first: the reference setting (the largest size,
the smallest batch, float32) of every experiment, then bfloat16 at the larger batches,
then the rest, each group largest size first. Before each row the time it will take
is estimated from the rows done (the most similar one); a row that would end past
--budget-s is skipped ('skipped: budget'), and later, cheaper rows may still run. No
side runs past --budget-s + --grace-s (its timeout is cut to fit).

After every row, --out gets gpu_table.md (the markdown table, in grid order, with a
header of versions and definitions), gpu_table.jsonl (one record per row, both sides' full JSON) and
gpu_table.log (each subprocess's command, time and the tail of its stderr). The table
is printed at the end.

Columns: throughput per side, as batch elements per second of the training iteration
(CycleGAN: unpaired (A, B) pairs/s, one image of each domain per element; pix2pix:
aligned (input, target) pairs/s); ratio jaxgan / baseline (> 1: jaxgan faster); MFU,
XLA's FLOP count of jaxgan's iteration / step time / --peak-tflops (the measured dense
bf16 matrix-product peak, also for float32 rows), for the baseline with the same FLOP
count (the same networks and losses); jaxgan's lower + compile seconds and the
baseline's first-iteration seconds (cuDNN autotuning); peak device memory: jaxgan's
allocator peak (XLA's compiled estimate in parentheses), torch.cuda.max_memory_allocated for the baseline.

pix2pix uses the U-Net that fits the size (unet_32 .. unet_256, the largest whose
depth divides it), on both sides. Baseline bfloat16 rows use AMP autocast and
channels_last (--torch-channels-last). The baseline's parameter-count check against
jaxgan runs once per (experiment, generator), not every row.
"""

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROG = 'gpu_table'
UNET_DEPTHS = (('unet_256', 8), ('unet_128', 7), ('unet_64', 6), ('unet_32', 5))
SIDES = ('jaxgan', 'torch')
VERSIONS = ('jax', 'jaxlib', 'jax-cuda13-plugin', 'jax-cuda12-plugin', 'flax', 'optax',
            'orbax-checkpoint', 'ml-collections', 'numpy', 'torch')


def _csv(kind):
  return lambda text: [kind(t) for t in text.split(',') if t]


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python experiments/gpu_table.py',
                              description=__doc__.split('\n')[0])
  p.add_argument('--experiments', type=_csv(str), default=['cyclegan', 'pix2pix'])
  p.add_argument('--sizes', type=_csv(int), default=[64, 128, 256])
  p.add_argument('--batches', type=_csv(int), default=[1, 8, 32])
  p.add_argument('--dtypes', type=_csv(str), default=['float32', 'bfloat16'])
  p.add_argument('--device', default='cuda', choices=('cuda', 'cpu'))
  p.add_argument('--sides', type=_csv(str), default=list(SIDES),
                 help='jaxgan,torch or one of them')
  p.add_argument('--steps', type=int, default=10, help='timed steps per side and row')
  p.add_argument('--warmup', type=int, default=2, help='untimed steps first')
  p.add_argument('--budget-s', type=float, default=400.0,
                 help='skip rows that would end later than this after the start')
  p.add_argument('--grace-s', type=float, default=40.0,
                 help='a running row may overrun the budget by this much, no more')
  p.add_argument('--row-timeout-s', type=float, default=150.0,
                 help='limit of each side of a row (a subprocess)')
  p.add_argument('--peak-tflops', type=float, default=790.0,
                 help='the MFU denominator: the measured dense bf16 peak (H200: ~790)')
  p.add_argument('--torch-channels-last', default='bfloat16',
                 choices=('bfloat16', 'all', 'none'),
                 help='which baseline rows run channels_last')
  p.add_argument('--count-check', default='once', choices=('once', 'every', 'never'),
                 help="the baseline's parameter-count check against jaxgan")
  p.add_argument('--out', default=os.environ.get('OUT') or '/tmp/gpu_check_out')
  p.add_argument('--python', default=sys.executable, help='interpreter of the sides')
  p.add_argument('--extra', default='',
                 help="more bench_step.py arguments for every row, e.g. "
                 "'--config.model.ngf=8 --config.model.ndf=8' (space-separated)")
  p.add_argument('--torch-extra', default='',
                 help="more torch_baseline.py arguments, e.g. '--ngf 8 --ndf 8'")
  args = p.parse_args(argv)
  bad = [s for s in args.sides if s not in SIDES]
  if bad or not args.sides:
    p.error(f'--sides: {bad or "none"}; valid: ' + ','.join(SIDES))
  for d in args.dtypes:
    if d not in ('float32', 'bfloat16'):
      p.error(f'--dtypes: {d!r}; valid: float32, bfloat16')
  if args.steps < 1 or args.warmup < 1:
    p.error('--steps and --warmup must be >= 1 (the first warm-up step is timed apart)')
  return args


# -- the grid ------------------------------------------------------------------------


def generator(experiment, size):
  """pix2pix's U-Net for `size` (as torch_baseline.default_generator), else ''."""
  if experiment != 'pix2pix':
    return ''
  for name, depth in UNET_DEPTHS:
    if size % 2 ** depth == 0:
      return name
  raise SystemExit(f'{PROG}: error: pix2pix needs sizes that are multiples of 32; '
                   f'got {size}')


def ordered_rows(args):
  """(experiment, size, batch, dtype), most important first."""
  big, small = max(args.sizes), min(args.batches)

  def tier(row):
    _, size, batch, dtype = row
    if size == big and batch == small and dtype == 'float32':
      return 0  # the reference setting
    if dtype == 'bfloat16' and batch != small:
      return 1
    return 2

  rows = [(e, s, b, d) for e in args.experiments for s in args.sizes
          for b in args.batches for d in args.dtypes]
  return sorted(rows, key=lambda r: (tier(r), -r[1], r[2], args.dtypes.index(r[3]),
                                     args.experiments.index(r[0])))


def estimate(row, done):
  """Seconds the row should take, from the done row most like it (None: no rows)."""
  if not done:
    return None
  e, s, b, d = row

  def score(r):
    return ((r['experiment'] == e) * 8 + (r['size'] == s) * 4 + (r['batch'] == b) * 2
            + (r['dtype'] == d))

  best = max(score(r) for r in done)
  similar = [r['elapsed_s'] for r in done if score(r) == best]
  guess = statistics.median(similar)
  # Larger rows than any like them: scale by pixels x batch above the closest one.
  closest = [r for r in done if score(r) == best]
  work = max((r['size'] ** 2 * r['batch'] for r in closest), default=1)
  if s * s * b > work:
    guess *= min(4.0, (s * s * b / work) ** 0.5)
  return guess


# -- running a side ------------------------------------------------------------------


def _one_line(text, limit=180):
  """The last informative line of a subprocess's stderr."""
  lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
  for ln in reversed(lines):
    if ln.startswith(('Traceback', 'File ', 'warnings.warn', 'WARNING: All log')):
      continue
    return ln[:limit]
  return 'no output'


def run_side(cmd, env, timeout, log):
  """(record or None, reason or '', seconds) of one subprocess."""
  t0 = time.monotonic()
  log.write(f'$ {" ".join(cmd)}\n')
  try:
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
  except subprocess.TimeoutExpired as e:
    elapsed = time.monotonic() - t0
    err = e.stderr.decode(errors='replace') if isinstance(e.stderr, bytes) else (
        e.stderr or '')
    log.write(f'  timeout after {elapsed:.0f} s\n{_tail(err)}\n')
    log.flush()
    return None, f'timeout after {timeout:.0f} s', elapsed
  elapsed = time.monotonic() - t0
  log.write(f'  rc {proc.returncode} in {elapsed:.1f} s\n{_tail(proc.stderr)}\n')
  log.flush()
  record = None
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith('{'):
      try:
        record = json.loads(line)
        break
      except json.JSONDecodeError:
        pass
  if proc.returncode != 0 or record is None:
    reason = _one_line(proc.stderr) if proc.returncode else 'no JSON line in its output'
    return None, f'rc {proc.returncode}: {reason}', elapsed
  if not record.get('finite', True):
    return record, 'non-finite losses', elapsed
  return record, '', elapsed


def _tail(text, lines=15):
  return '\n'.join('  | ' + ln for ln in text.splitlines()[-lines:])


def commands(args, row, count_check):
  e, s, b, d = row
  gen = generator(e, s)
  jax_cmd = [args.python, str(HERE / 'bench_step.py'), '--experiment', e, '--sizes',
             str(s), '--batches', str(b), '--dtypes', d, '--steps', str(args.steps),
             '--warmup', str(args.warmup), '--json']
  if gen:
    jax_cmd.append(f'--config.model.generator={gen}')
  jax_cmd += args.extra.split()
  torch_cmd = [args.python, str(HERE / 'torch_baseline.py'), '--experiment', e,
               '--size', str(s), '--batch', str(b), '--dtype', d, '--steps',
               str(args.steps), '--warmup', str(args.warmup), '--device', args.device,
               '--json']
  if gen:
    torch_cmd += ['--generator', gen]
  if args.torch_channels_last == 'all' or args.torch_channels_last == d:
    torch_cmd.append('--channels-last')
  if not count_check:
    torch_cmd.append('--skip-count-check')
  torch_cmd += args.torch_extra.split()
  return {'jaxgan': jax_cmd, 'torch': torch_cmd}


def environments(args):
  base = dict(os.environ, PYTHONUNBUFFERED='1')
  base.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  path = [str(REPO)] + [p for p in base.get('PYTHONPATH', '').split(os.pathsep) if p]
  base['PYTHONPATH'] = os.pathsep.join(dict.fromkeys(path))
  return {'jaxgan': dict(base, JAX_PLATFORMS='cuda' if args.device == 'cuda' else 'cpu'),
          # The baseline's jax only counts parameters from shapes.
          'torch': dict(base, JAX_PLATFORMS='cpu')}


# -- preflight and versions ----------------------------------------------------------

_JAX_PROBE = """
import json, sys
sys.path.insert(0, 'experiments')
import bench_step, jax, jaxlib
d = jax.devices()[0]
print(json.dumps(dict(platform=d.platform, device_kind=d.device_kind,
                      count=jax.device_count(), jax=jax.__version__,
                      jaxlib=jaxlib.__version__,
                      tf_placeholder=type(sys.modules['jaxgan.data']).__name__ ==
                      '_Placeholder')))
"""

_TORCH_PROBE = """
import json, torch
cuda = torch.cuda.is_available()
print(json.dumps(dict(torch=torch.__version__, cuda=torch.version.cuda, available=cuda,
                      cudnn=torch.backends.cudnn.version(),
                      device=torch.cuda.get_device_name() if cuda else 'cpu')))
"""


def probe(args, envs, log):
  """{side: (info or None, reason)}: each side's imports, run once before the grid."""
  out = {}
  for side, code in (('jaxgan', _JAX_PROBE), ('torch', _TORCH_PROBE)):
    if side not in args.sides:
      continue
    info, reason, _ = run_side([args.python, '-c', code], envs[side], 90, log)
    if info is not None and side == 'torch' and args.device == 'cuda' and not info[
        'available']:
      info, reason = None, f'torch {info["torch"]}: torch.cuda.is_available() is False'
    if info is not None and side == 'jaxgan' and args.device == 'cuda' and info[
        'platform'] != 'gpu':
      info, reason = None, f'jax platform is {info["platform"]}, not gpu'
    out[side] = (info, reason)
  return out


def versions():
  found = {}
  for name in VERSIONS:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def nvidia_smi():
  if not shutil.which('nvidia-smi'):
    return ''
  try:
    return subprocess.run(
        ['nvidia-smi', '--query-gpu=name,driver_version,memory.total,clocks.max.sm',
         '--format=csv,noheader'], capture_output=True, text=True,
        timeout=20).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return ''


# -- the table -----------------------------------------------------------------------


def _f(x, fmt):
  return '' if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(
      x, fmt)


def _mfu(x):
  return _f(x, '.1f' if x is not None and x >= 1 else '.2g')


def table_row(r, peak_flops):
  j, t = r.get('jaxgan'), r.get('torch')
  flop = j['gflop'] * 1e9 if j and j.get('gflop') is not None else None
  ratio = j['img_s'] / t['img_s'] if j and t else None
  mfu_j = flop / j['step_s'] / peak_flops * 100 if flop and j else None
  mfu_t = flop / t['step_s'] / peak_flops * 100 if flop and t else None
  gib = 1 / 1024
  peak_j = ''
  if j:
    est = (j.get('arg_mb', 0) + j.get('out_mb', 0) - j.get('alias_mb', 0)
           + j.get('temp_mb', 0)) * gib
    peak_j = (_f(j['peak_mb'] * gib, '.2f') if j.get('peak_mb') is not None else '-') \
        + f' ({est:.2f})'
  peak_t = _f(t['peak_mb'] * gib, '.2f') if t and t.get('peak_mb') is not None else (
      '-' if t else '')
  notes = list(r['notes'])
  hlo = j and j.get('gflop_hlo')
  if flop and hlo and abs(hlo * 1e9 / flop - 1) > 0.2:
    notes.append(f'XLA FLOPs: compiled {flop / 1e9:.0f} G vs HLO {hlo:.0f} G')
  cells = [r['experiment'], str(r['size']), str(r['batch']), r['dtype'],
           _f(j and j['img_s'], '.2f'), _f(t and t['img_s'], '.2f'), _f(ratio, '.2f'),
           _mfu(mfu_j), _mfu(mfu_t), _f(j and j['compile_s'], '.1f'),
           _f(t and t.get('first_s'), '.2f'), peak_j, peak_t,
           '; '.join(notes).replace('|', '/')]
  return '| ' + ' | '.join(cells) + ' |'


COLUMNS = ('experiment', 'size', 'batch', 'dtype', 'jaxgan pairs/s', 'torch pairs/s',
           'jaxgan / torch', 'jaxgan MFU %', 'torch MFU %', 'jaxgan compile s',
           'torch 1st iter s', 'jaxgan peak GiB (XLA est.)', 'torch peak GiB', 'notes')


def header(args, meta):
  p = meta['probe']
  v = meta['versions']
  jinfo, jwhy = p.get('jaxgan', (None, 'not run'))
  tinfo, twhy = p.get('torch', (None, 'not run'))
  device = (meta['nvidia_smi'] or (tinfo or {}).get('device') or (jinfo or {}).get(
      'device_kind') or platform.processor() or 'cpu')
  pkgs = ', '.join(f'{k} {x}' for k, x in v.items())
  lines = [
      '# jaxgan vs the PyTorch baseline: one training iteration',
      '',
      f'{meta["started"]}; {args.device}: {device}; host {platform.node()} '
      f'({os.cpu_count()} CPUs); Python {platform.python_version()}.',
      f'Packages: {pkgs}.',
      'jaxgan side: ' + (f'jax {jinfo["jax"]} on {jinfo["count"]} x '
                         f'{jinfo["device_kind"]} ({jinfo["platform"]})'
                         + ('; TensorFlow missing: jaxgan.data is a placeholder'
                            if jinfo['tf_placeholder'] else '')
                         if jinfo else f'FAILED its import check: {jwhy}') + '.',
      'Baseline side: ' + (f'torch {tinfo["torch"]}, CUDA {tinfo["cuda"]}, cuDNN '
                           f'{tinfo["cudnn"]}, {tinfo["device"]}' if tinfo else
                           f'FAILED its import check: {twhy}') + '.',
      '',
      f'Each side: median of {args.steps} timed iterations after {args.warmup} '
      'untimed, random data, its own process per row; full-size networks '
      '(ResNet-9 CycleGAN, U-Net pix2pix sized to the image, 70x70 PatchGANs).',
      '- pairs/s: batch elements per second. CycleGAN: unpaired (A, B) pairs, one '
      'image of each domain per element (images/s over both domains is twice this); '
      'pix2pix: aligned (input, target) pairs.',
      '- jaxgan / torch: throughput ratio, > 1 when jaxgan is faster. Baseline '
      'parameter counts checked against jaxgan\'s: ' + {
          'once': 'once per (experiment, generator)', 'every': 'every row',
          'never': 'no'}[args.count_check] + '.',
      f'- MFU: XLA\'s FLOP count of jaxgan\'s iteration / step time / '
      f'{args.peak_tflops:g} TFLOP/s (the measured dense bf16 peak), for float32 rows '
      'too (so they read low against their own TF32/fp32 ceiling); the torch column '
      'divides the same FLOP count by the baseline\'s time. The count is the compiled '
      'module\'s; a note flags rows where the unoptimised HLO\'s differs by > 20%.',
      '- float32: each framework\'s defaults (XLA and cuDNN may use TF32 for float32 '
      'convolutions). bfloat16: jaxgan `dtype=bfloat16` (bf16 compute, float32 '
      'parameters and optimizer); baseline AMP autocast bf16'
      + (' + channels_last' if args.torch_channels_last != 'none' else '') + '.',
      '- jaxgan compile s: lower + compile of its step functions (a persistent-cache '
      f'hit makes it a load time; cache {meta["cache"]}). torch 1st iter s: the first '
      'untimed iteration (cuDNN autotuning, allocator growth).',
      '- peak GiB: jaxgan: the allocator\'s peak_bytes_in_use in the row\'s process; in '
      'parentheses XLA\'s compiled estimate for the largest step function (arguments '
      '+ outputs - donated aliases + temporaries). torch: torch.cuda.max_memory_allocated. - where the '
      'backend keeps no statistics (CPU).',
      '',
      '| ' + ' | '.join(COLUMNS) + ' |',
      '|' + '---|' * len(COLUMNS),
  ]
  return lines


def write_table(path, args, meta, done):
  order = {e: i for i, e in enumerate(args.experiments)}
  rows = sorted(done, key=lambda r: (order[r['experiment']], r['size'], r['batch'],
                                     r['dtype'] != 'float32'))
  lines = header(args, meta) + [table_row(r, args.peak_tflops * 1e12) for r in rows]
  lines.append('')
  lines.append(f'{meta["status"]}')
  tmp = path.with_suffix('.tmp')
  tmp.write_text('\n'.join(lines) + '\n')
  tmp.replace(path)
  return lines


# -- main ----------------------------------------------------------------------------


def main(argv):
  args = parse_args(argv)
  start = time.monotonic()
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  md, jsonl, logp = out / 'gpu_table.md', out / 'gpu_table.jsonl', out / 'gpu_table.log'
  jsonl.write_text('')
  cache = os.environ.get('JAX_COMPILATION_CACHE_DIR', '')
  cache_state = 'off' if not cache else (
      f'{cache}, ' + ('non-empty at start' if Path(cache).is_dir() and any(
          Path(cache).iterdir()) else 'empty at start'))
  envs = environments(args)
  rows = ordered_rows(args)
  for row in rows:
    generator(row[0], row[1])  # fails early on a size pix2pix can't take
  with open(logp, 'w') as log:
    meta = dict(started=datetime.datetime.now().astimezone().isoformat(timespec='seconds'),
                versions=versions(), nvidia_smi=nvidia_smi() if args.device == 'cuda' else
                '', cache=cache_state, status='running')
    print(f'{PROG}: import checks ...', flush=True)
    meta['probe'] = probe(args, envs, log)
    for side, (info, reason) in meta['probe'].items():
      print(f'{PROG}: {side}: ' + (json.dumps(info) if info else f'FAILED: {reason}'),
            flush=True)
    if meta['probe'].get('jaxgan', (True,))[0] is None and args.count_check != 'never':
      # The check imports jaxgan too: it would fail every baseline row.
      args.count_check = 'never'
      print(f'{PROG}: baseline parameter-count check off (jaxgan does not import)',
            flush=True)
    write_table(md, args, meta, [])
    done, checked = [], set()
    for i, row in enumerate(rows):
      e, s, b, d = row
      record = dict(experiment=e, size=s, batch=b, dtype=d, generator=generator(e, s),
                    notes=[])
      elapsed = time.monotonic() - start
      guess = estimate(row, [r for r in done if 'elapsed_s' in r])
      left = args.budget_s - elapsed
      if left < 5 or (guess is not None and guess > left):
        record['notes'].append(f'skipped: budget (~{guess or 0:.0f} s needed, '
                               f'{max(left, 0):.0f} s left)')
        record['status'] = 'skipped'
      else:
        print(f'{PROG}: row {i + 1}/{len(rows)}: {e} {s}x{s} batch {b} {d} '
              f'(t={elapsed:.0f} s, estimate {_f(guess, ".0f") or "?"} s)', flush=True)
        t_row = time.monotonic()
        key = (e, record['generator'])
        count_check = args.count_check == 'every' or (
            args.count_check == 'once' and key not in checked)
        cmds = commands(args, row, count_check)
        for side in args.sides:
          info, why = meta['probe'].get(side, (None, 'not run'))
          if info is None:
            record['notes'].append(f'{side} failed: import check: {why}')
            continue
          # Never past the budget's end by more than --grace-s, whatever the row limit.
          limit = min(args.row_timeout_s,
                      args.budget_s + args.grace_s - (time.monotonic() - start))
          if limit < 5:
            record['notes'].append(f'{side} skipped: budget')
            continue
          result, why, secs = run_side(cmds[side], envs[side], limit, log)
          record[f'{side}_s'] = secs
          if result is not None:
            record[side] = result
          if why:
            record['notes'].append(f'{side} {"failed: " if result is None else ""}{why}')
          if side == 'torch' and result is not None and count_check:
            checked.add(key)
        record['elapsed_s'] = time.monotonic() - t_row
        record['status'] = 'ok' if all(record.get(s) for s in args.sides) else 'failed'
        j, t = record.get('jaxgan'), record.get('torch')
        print(f'{PROG}:   {record["elapsed_s"]:.0f} s: jaxgan '
              f'{_f(j and j["img_s"], ".2f") or "-"}/s, torch '
              f'{_f(t and t["img_s"], ".2f") or "-"}/s'
              + (f'  [{"; ".join(record["notes"])}]' if record['notes'] else ''),
              flush=True)
      done.append(record)
      with open(jsonl, 'a') as f:
        f.write(json.dumps(record) + '\n')
      n_ok = sum(r['status'] == 'ok' for r in done)
      meta['status'] = (f'{len(done)}/{len(rows)} rows: {n_ok} complete; '
                        f'{time.monotonic() - start:.0f} s of a {args.budget_s:g} s budget'
                        + ('' if len(done) == len(rows) else ' (running)'))
      lines = write_table(md, args, meta, done)
  print('\n'.join(lines), flush=True)
  return 0 if all(r['status'] == 'ok' for r in done) else 1


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
