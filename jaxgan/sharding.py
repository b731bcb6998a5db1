"""The device mesh and the two shardings the trainer uses.

One mesh axis, `data`, over every device of every process. The train state is
replicated; batches are split along their first dimension. Tasks never see shardings:
the loop jits their pure step with these as explicit in/out shardings.
"""

import logging
import os

import jax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from jaxgan.errors import JaxganError

DATA_AXIS = 'data'

# Variables set by launchers whose processes must join one JAX runtime. (TPU pods and
# other launchers: pass --distributed to main.)
_CLUSTER_ENV = ('JAX_COORDINATOR_ADDRESS', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def maybe_initialize_distributed(force: bool = False) -> None:
  """Calls `jax.distributed.initialize()` when this is one of several processes."""
  multi = any(int(os.environ.get(v, '1') or 1) > 1 for v in ('SLURM_NTASKS',
                                                             'OMPI_COMM_WORLD_SIZE'))
  if force or multi or os.environ.get('JAX_COORDINATOR_ADDRESS'):
    jax.distributed.initialize()
    logging.info('jax.distributed initialised: process %d of %d',
                 jax.process_index(), jax.process_count())


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
  """A 1-D `data` mesh over all devices (or the first `num_devices`)."""
  n = jax.device_count() if num_devices is None else num_devices
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:n])


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch(global_batch: int, mesh) -> None:
  devices = mesh.shape[DATA_AXIS]
  if global_batch % devices:
    raise JaxganError(f'data.batch_size={global_batch} is not divisible by the '
                      f'{devices} devices of the data axis')
