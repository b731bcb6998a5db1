"""`python -m jaxgan.params`: per-network parameter counts of any experiment, checked
against the reference networks' published counts (pytorch-CycleGAN-and-pix2pix's
ResNet-9 generator and 70x70 PatchGAN; the PyTorch example's DCGAN at 64x64 RGB)."""

import subprocess

import pytest

from conftest import PYTHON, REPO, run_in_process, subprocess_env


def _rows(stdout: str) -> dict[str, int]:
  rows = [line.strip('|').split('|') for line in stdout.splitlines()
          if line.startswith('| ') and not line.startswith('| network')]
  return {name.strip(): int(n.strip().replace(',', '')) for name, n in rows}


@pytest.mark.slow
def test_cyclegan_reference_counts_from_the_command_line():
  out = subprocess.run([PYTHON, '-m', 'jaxgan.params', '--experiment', 'cyclegan'],
                       cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert _rows(out.stdout) == {'G': 11_378_179, 'F': 11_378_179, 'D_A': 2_764_737,
                               'D_B': 2_764_737, 'total': 2 * (11_378_179 + 2_764_737)}


def test_overrides_and_other_experiments(capsys):
  out = run_in_process(capsys, 'jaxgan.params', '--experiment', 'dcgan',
                       '--config.data.image_size=64', '--config.data.load_size=64',
                       '--config.data.channels=3')
  assert out.returncode == 0, out.stderr
  assert _rows(out.stdout) == {'G': 3_576_704, 'D': 2_765_568, 'total': 6_342_272}
  out = run_in_process(capsys, 'jaxgan.params', '--experiment', 'pix2pix',
                       '--config.model.discriminator=pixel')
  assert _rows(out.stdout)['D'] == 9_024 and _rows(out.stdout)['G'] == 54_413_955
  out = run_in_process(capsys, 'jaxgan.params', '--experiment', 'dcgan',
                       '--config.model.ngff=3')
  assert out.returncode == 1 and "unknown config key 'model.ngff'" in out.stderr


@pytest.mark.parametrize('size,channels,synthesis,g,d', [
    (32, 3, 'modulated', 19_947_539, 21_507_073),
    (64, 3, 'modulated', 22_243_608, 23_407_361),
    (32, 1, 'modulated', 19_943_435, 21_506_049),
    # NVlabs stylegan's G_synthesis (structure 'fixed', fmap_base 8192: 20,735,491
    # trainable, counted in TF1-compat) + our 2-layer mapping (525,312).
    (32, 3, 'adain', 21_260_803, 21_507_073),
])
def test_stylegan_counts_equal_the_reference(size, channels, synthesis, g, d, capsys):
  # stylegan2-ada-pytorch's `auto` preset (channel_base 16384, channel_max 512,
  # z = w = 512, map 2), trainable parameters only.
  out = run_in_process(capsys, 'jaxgan.params', '--experiment', 'stylegan',
                       f'--config.data.image_size={size}', f'--config.data.load_size={size}',
                       f'--config.data.channels={channels}',
                       f'--config.model.synthesis={synthesis}')
  assert out.returncode == 0, out.stderr
  assert _rows(out.stdout) == {'G': g, 'D': d, 'total': g + d}
