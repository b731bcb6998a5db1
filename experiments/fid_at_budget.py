"""FID of several GAN runs at the same wall-clock training budget.

  python experiments/fid_at_budget.py --minutes 20 --num-images 2000 --cores 0,1 \\
      --run dcgan=dcgan:demo \\
      --run 'modulated=stylegan:demo' \\
      --run 'adain=stylegan:demo --config.model.synthesis=adain'

Each --run NAME=SPEC [--config.KEY=VALUE ...] trains `python -m jaxgan.main
--experiment SPEC` in ROOT/NAME with no step limit, a checkpoint every
--checkpoint-every steps (all kept), and is stopped after --minutes plus a margin.
The checkpoint scored is the last one written within --minutes of the run's start
(process start, so start-up and compilation count against the budget); its FID/KID
against the task's test split come from `python -m jaxgan.evaluate --num-images N`.

With --cores C0,C1,... the runs are pinned one per core (`taskset`) and up to that
many train at once, so each run gets one whole core for the same wall-clock time;
without it they run one after another on the whole machine. Evaluation runs after
all training, one at a time. Prints a table and writes ROOT/fid_at_budget.json.

Runs generating 32x32x1 images (MNIST) also get the digit-coverage columns of
`experiments/mnist_classifier.py` for the same checkpoint and --num-images samples of
one fixed z set (seed 0): the class entropy (nats), the classes above 5% of the
samples and the across-sample pixel std. Without the classifier's weights file
(--classifier, default beside the data cache) or for other image shapes the columns
are left out, with the reason printed.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

MARGIN_S = 90  # training continues this long past the budget, so a save can finish


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--run', action='append', required=True, metavar='NAME=SPEC [OVERRIDES]',
                 help='a run: its name, its --experiment and any --config overrides')
  p.add_argument('--minutes', type=float, required=True, help='training budget per run')
  p.add_argument('--num-images', type=int, default=2000, help='images for FID/KID')
  p.add_argument('--checkpoint-every', type=int, default=100)
  p.add_argument('--cores', default='', help='pin runs one per core, e.g. 0,1')
  p.add_argument('--root', default='runs/fid_at_budget')
  p.add_argument('--skip-training', action='store_true',
                 help='score the runs already in ROOT (their start times are kept)')
  p.add_argument('--classifier', default=None,
                 help='the MNIST classifier for the coverage columns (default: '
                 'experiments/mnist_classifier.py\'s default path)')
  args = p.parse_args(argv)
  runs = []
  for text in args.run:
    head, *overrides = shlex.split(text)
    name, sep, spec = head.partition('=')
    if not sep or not name or not spec:
      p.error(f'--run {text!r}: expected NAME=SPEC [--config.KEY=VALUE ...]')
    runs.append((name, spec, overrides))
  if len({name for name, _, _ in runs}) != len(runs):
    p.error('--run names must be unique')
  if args.minutes <= 0:
    p.error(f'--minutes must be > 0, got {args.minutes}')
  args.runs = runs
  args.cores = [int(c) for c in args.cores.split(',') if c]
  return args


def train_command(spec, overrides, workdir, checkpoint_every):
  return [sys.executable, '-m', 'jaxgan.main', '--experiment', spec,
          '--workdir', str(workdir), '--config.train.num_steps=100000000',
          f'--config.train.checkpoint_every={checkpoint_every}',
          '--config.train.keep_checkpoints=100000', '--config.eval.every=0', *overrides]


def train_all(args, root: Path):
  """Trains every run for the budget, recording each start in NAME/budget_start.json."""
  pending = list(args.runs)
  slots = args.cores or [None]
  active = {}  # core -> (name, process, start, log)
  limit = args.minutes * 60 + MARGIN_S
  while pending or active:
    for core in slots:
      if core not in active and pending:
        name, spec, overrides = pending.pop(0)
        workdir = root / name
        if workdir.exists():
          sys.exit(f'{workdir} exists; remove it or pass --skip-training')
        workdir.mkdir(parents=True)
        cmd = train_command(spec, overrides, workdir, args.checkpoint_every)
        if core is not None:
          cmd = ['taskset', '-c', str(core)] + cmd
        log = open(root / f'{name}.log', 'w')  # noqa: SIM115 (closed when the run ends)
        start = time.time()
        (workdir / 'budget_start.json').write_text(json.dumps(
            {'start': start, 'command': cmd, 'core': core}))
        print(f'[{name}] training {args.minutes:g} min' +
              ('' if core is None else f' on core {core}'), flush=True)
        active[core] = (name, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT),
                        start, log)
    time.sleep(2)
    for core, (name, proc, start, log) in list(active.items()):
      if proc.poll() is not None or time.time() - start > limit:
        if proc.poll() is None:
          proc.terminate()  # SIGTERM: the loop saves and exits
          try:
            proc.wait(120)
          except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        del active[core]


def checkpoint_in_budget(workdir: Path, start: float, budget_s: float):
  """(step, seconds) of the last checkpoint whose directory was written within the
  budget, or None."""
  best = None
  for d in (workdir / 'checkpoints').iterdir():
    if d.name.isdigit():
      elapsed = d.stat().st_mtime - start
      if elapsed <= budget_s and (best is None or int(d.name) > best[0]):
        best = (int(d.name), elapsed)
  return best


def evaluate(workdir: Path, step: int, num_images: int) -> dict:
  """The scores of `python -m jaxgan.evaluate` (reused if already written for N)."""
  out = workdir / f'eval_{step}.json'
  if out.exists() and json.loads(out.read_text()).get('num_images') == num_images:
    return json.loads(out.read_text())
  cmd = [sys.executable, '-m', 'jaxgan.evaluate', '--workdir', str(workdir),
         '--step', str(step), '--num-images', str(num_images)]
  if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode:
    # Its one-line error is above; the trained runs stay, so no work is lost.
    sys.exit(f'fid_at_budget: error: scoring {workdir} at step {step} failed (see the '
             'error above); fix that and rerun with --skip-training to score the runs '
             'already trained')
  return json.loads(out.read_text())


def add_coverage(rows, root: Path, num_images: int, classifier) -> None:
  """The classifier's coverage columns added to each row whose run generates 32x32x1
  images, scored on the row's checkpoint; reasons printed where they are left out."""
  # Imported here: jax and flax are not needed to train the runs.
  import mnist_classifier
  import mode_coverage
  from jaxgan.errors import JaxganError
  try:
    params, _ = mnist_classifier.load(classifier)
  except JaxganError as e:
    print(f'no coverage columns: {e}', flush=True)
    return
  for r in rows:
    try:
      sampler = mode_coverage.CheckpointSampler(root / r['run'], num_images, seed=0)
      scores, _ = mnist_classifier.diversity(params, sampler(r['step']))
    except JaxganError as e:
      print(f'[{r["run"]}] no coverage columns: {e}', flush=True)
      continue
    r.update(scores)


def main(argv):
  args = parse_args(argv)
  root = Path(args.root)
  root.mkdir(parents=True, exist_ok=True)
  if not args.skip_training:
    train_all(args, root)
  starts = {name: json.loads((root / name / 'budget_start.json').read_text())['start']
            for name, _, _ in args.runs}
  rows = []
  for name, spec, overrides in args.runs:
    workdir = root / name
    config = json.loads((workdir / 'config.json').read_text())
    found = checkpoint_in_budget(workdir, starts[name], args.minutes * 60)
    if found is None:
      print(f'[{name}] no checkpoint within {args.minutes:g} min', flush=True)
      continue
    step, elapsed = found
    print(f'[{name}] scoring step {step} ({elapsed / 60:.1f} min)', flush=True)
    scores = evaluate(workdir, step, args.num_images)
    rows.append({'run': name, 'experiment': spec, 'overrides': overrides, 'step': step,
                 'minutes': round(elapsed / 60, 2),
                 'images_seen': step * config['data']['batch_size'],
                 **{k: scores[k] for k in ('fid', 'kid', 'kid_std') if k in scores}})
  add_coverage(rows, root, args.num_images, args.classifier)
  coverage = any('entropy' in r for r in rows)
  print(f'\nFID at {args.minutes:g} min of training per run, {args.num_images} images'
        + (f', one core per run ({",".join(map(str, args.cores))})' if args.cores else ''))
  print(f'{"run":<12} {"step":>7} {"min":>6} {"images":>9} {"FID":>8} {"KID":>8}'
        + (f' {"entropy":>8} {">5%":>4} {"pix std":>8}' if coverage else ''))
  for r in rows:
    line = (f'{r["run"]:<12} {r["step"]:>7} {r["minutes"]:>6.1f} {r["images_seen"]:>9} '
            f'{r.get("fid", float("nan")):>8.2f} {r.get("kid", float("nan")):>8.4f}')
    if 'entropy' in r:
      line += f' {r["entropy"]:>8.3f} {r["classes"]:>4} {r["pixel_std"]:>8.4f}'
    print(line)
  (root / 'fid_at_budget.json').write_text(json.dumps(
      {'minutes': args.minutes, 'num_images': args.num_images, 'cores': args.cores,
       'rows': rows}, indent=2))


if __name__ == '__main__':
  main(sys.argv[1:])
