"""pytorch-CycleGAN-and-pix2pix state dicts imported without torch
(`jaxgan.interop.junyanz`), against the reference's own outputs in
../shared/interop (README there): a ResNet-6 (ngf 8, instance norm) and a U-Net-128
(ngf 8, batch norm) generator, each run by the reference in eval mode (running
statistics, no dropout) on a fixed input. Also: a mismatched architecture and an
unknown file are one line naming the key."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import SHARED, require
from jaxgan import config as config_lib, models
from jaxgan.errors import JaxganError
from jaxgan.interop import junyanz

INTEROP = SHARED / 'interop'
CASES = {
    'resnet6': ('cyclegan', 'cyclegan_resnet6_ngf8', 'resnet_6blocks', 'instance'),
    'unet128': ('pix2pix', 'pix2pix_unet128_ngf8', 'unet_128', 'batch'),
}
TOL = 1e-4


def _config(experiment, generator, norm, ngf=8):
  config = config_lib.get_experiment(experiment)
  config.model.generator, config.model.ngf, config.model.norm = generator, ngf, norm
  return config


@functools.cache
def _setup(case):
  experiment, stem, generator, norm = CASES[case]
  pth = require(INTEROP / f'{stem}_net_G.pth', 'the reference JZ checkpoints')
  io = np.load(require(INTEROP / f'{stem}_io.npz', 'the reference JZ outputs'))
  config = _config(experiment, generator, norm)
  module = models.make_generator(generator, ngf=8, norm=norm)
  x = io['input_nchw'].transpose(0, 2, 3, 1)
  abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                jnp.zeros((1,) + x.shape[1:])))
  variables = junyanz.load_network(pth, generator, config, abstract)
  return module, variables, x, io['output_nchw'].transpose(0, 2, 3, 1)


def _run(module, variables, x):
  variables = {k: v for k, v in variables.items() if v}
  return np.asarray(jax.jit(lambda v, x: module.apply(v, x, train=False))(variables, x))


@pytest.mark.parametrize('case', sorted(CASES))
def test_generator_reproduces_reference_eval_output(case):
  module, variables, x, ref = _setup(case)
  out = _run(module, variables, x)
  assert out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=0, atol=TOL)


@pytest.mark.parametrize('case,leaf', [('resnet6', ('up_0_conv', 'kernel')),
                                       ('unet128', ('outer', 'inner', 'up_norm', 'bias'))])
def test_one_perturbed_weight_fails_the_tolerance(case, leaf):
  """The tolerance catches a small change of one mapped weight (so the test above
  can fail)."""
  module, variables, x, ref = _setup(case)
  params = jax.tree.map(np.array, variables['params'])
  node = params
  for key in leaf[:-1]:
    node = node[key]
  node[leaf[-1]].reshape(-1)[0] += 1e-2
  out = _run(module, {**variables, 'params': params}, x)
  assert np.abs(out - ref).max() > 10 * TOL


def test_transposed_conv_kernel_is_flipped():
  """The ConvTranspose mapping flips the kernel spatially (torch [in, out, kh, kw]
  -> [kh, kw, in, out] reversed), checked on a tiny hand-made weight."""
  _, transform = junyanz._torch_layout(('up_0_conv', 'kernel'), (3, 3, 2, 1))
  w = np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3)
  out = transform(w)
  assert out.shape == (3, 3, 2, 1)
  assert out[0, 0, 1, 0] == w[1, 0, 2, 2] and out[2, 1, 0, 0] == w[0, 0, 0, 1]


def test_detects_what_a_file_holds():
  for case, (_, stem, generator, norm) in CASES.items():
    tensors = junyanz.read_state_dict(require(INTEROP / f'{stem}_net_G.pth', 'JZ files'))
    info = junyanz.detect(tensors)
    assert (info['name'], info['ngf'], info['norm']) == (generator, 8, norm), case


def test_mismatched_architecture_is_one_line_naming_the_key():
  pth = require(INTEROP / 'cyclegan_resnet6_ngf8_net_G.pth', 'the reference JZ checkpoints')
  config = _config('cyclegan', 'resnet_9blocks', 'instance', ngf=8)
  module = models.make_generator('resnet_9blocks', ngf=8)
  abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                jnp.zeros((1, 64, 64, 3))))
  with pytest.raises(JaxganError) as e:
    junyanz.load_network(pth, 'resnet_9blocks', config, abstract)
  message = str(e.value)
  assert '\n' not in message
  # Block 6 of resnet_9 is where the ResNet-6's up-convolution sits.
  assert 'unexpected key model.16.bias [16]' in message and 'resnet_6blocks' in message


def test_wrong_width_names_key_and_both_shapes():
  pth = require(INTEROP / 'pix2pix_unet128_ngf8_net_G.pth', 'the reference JZ checkpoints')
  config = _config('pix2pix', 'unet_128', 'batch', ngf=16)
  module = models.make_generator('unet_128', ngf=16, norm='batch')
  abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                jnp.zeros((1, 128, 128, 3))))
  with pytest.raises(JaxganError,
                     match=r'key model\.model\.0\.weight has shape \[8, 3, 4, 4\] in the '
                     r'file, the config\'s unet_128 expects \[16, 3, 4, 4\]; the file holds '
                     r'a unet_128 generator, ngf 8, batch norm'):
    junyanz.load_network(pth, 'unet_128', config, abstract)


def test_unknown_files_are_one_line(tmp_path):
  text = tmp_path / 'latest_net_G.pth'
  text.write_text('not a checkpoint')
  config = _config('cyclegan', 'resnet_6blocks', 'instance')
  with pytest.raises(JaxganError, match='not a PyTorch checkpoint') as e:
    junyanz.load_network(text, 'resnet_6blocks', config, {'params': {}})
  assert '\n' not in str(e.value)
  fid = require(SHARED / 'interop' / 'sga_32px_1ch_cb512_cm64_z64.pkl', 'a pickle')
  with pytest.raises(JaxganError, match='refusing to unpickle the global torch_utils'):
    junyanz.load_network(fid, 'resnet_6blocks', config, {'params': {}})


def test_file_roles_follow_the_reference_names():
  assert junyanz.file_role('latest_net_G_A.pth') == 'G_A'
  assert junyanz.file_role('200_net_D_B.pth') == 'D_B'
  assert junyanz.file_role('latest_net_G.pth') == 'G'
  assert junyanz.file_role('model.pth') is None
  assert junyanz.NETWORK_NAMES['cyclegan'] == {'G_A': 'G', 'G_B': 'F', 'D_A': 'D_B',
                                                'D_B': 'D_A', 'G': 'G'}


@pytest.mark.parametrize('name,norm,keys', [
    ('basic', 'instance', ['model.0.weight', 'model.0.bias', 'model.2.weight',
                           'model.2.bias', 'model.5.weight', 'model.5.bias',
                           'model.8.weight', 'model.8.bias', 'model.11.weight',
                           'model.11.bias']),
    ('basic', 'batch', ['model.0.weight', 'model.0.bias', 'model.2.weight', 'model.3.weight',
                        'model.3.bias', 'model.3.running_mean', 'model.3.running_var',
                        'model.5.weight', 'model.6.weight', 'model.6.bias',
                        'model.6.running_mean', 'model.6.running_var', 'model.8.weight',
                        'model.9.weight', 'model.9.bias', 'model.9.running_mean',
                        'model.9.running_var', 'model.11.weight', 'model.11.bias']),
    ('pixel', 'instance', ['net.0.weight', 'net.0.bias', 'net.2.weight', 'net.2.bias',
                           'net.5.weight', 'net.5.bias']),
])
def test_discriminator_keys_are_the_reference_state_dict(name, norm, keys):
  """The keys `NLayerDiscriminator` / `PixelDiscriminator` save (nn.Sequential
  indices: conv, LeakyReLU, then conv, norm, LeakyReLU per layer), with torch
  shapes."""
  config = _config('cyclegan', 'resnet_6blocks', norm)
  config.model.discriminator, config.model.ndf = name, 8
  module = models.make_discriminator(name, ndf=8, norm=norm)
  abstract = jax.eval_shape(lambda: module.init(jax.random.PRNGKey(0),
                                                jnp.zeros((1, 32, 32, 3))))
  expected = junyanz.expected_keys(name, config, abstract)
  assert sorted(expected) == sorted(keys)
  assert expected['model.0.weight' if name == 'basic' else 'net.0.weight'][2] == (
      (8, 3, 4, 4) if name == 'basic' else (8, 3, 1, 1))
