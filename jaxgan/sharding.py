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

# Variables set by launchers whose processes must join one JAX runtime (JAX detects
# the rest itself). Other launchers: pass --distributed, or the coordinator flags.
_CLUSTER_ENV = ('JAX_COORDINATOR_ADDRESS', 'SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')


def maybe_initialize_distributed(force: bool = False, *,
                                 coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None) -> None:
  """Joins this process to a multi-process JAX runtime when asked to or launched as
  one of several processes; else does nothing.

  Explicit arguments (a plain launch: `--coordinator_address HOST:PORT
  --num_processes N --process_id I` on every process) go to
  `jax.distributed.initialize`; without them JAX detects SLURM, Open MPI or TPU
  settings itself. Two settings are made first:
    * CPU collectives across processes use Gloo (over TCP) unless another
      implementation was chosen (`jax_cpu_collectives_implementation`);
    * JAX's preemption service is turned off: it would replace the SIGTERM handler
      (`jaxgan.cli.StopRequest`) by its own, and the loop agrees on a stop itself
      (`jaxgan.train._StopVote`: all processes stop after the same step, one
      checkpoint).
  A failure to connect is one line naming the coordinator."""
  explicit = any(v is not None for v in (coordinator_address, num_processes,
                                         process_id))
  multi = any(int(os.environ.get(v, '1') or 1) > 1 for v in ('SLURM_NTASKS',
                                                             'OMPI_COMM_WORLD_SIZE'))
  if not (force or explicit or multi or os.environ.get('JAX_COORDINATOR_ADDRESS')):
    return
  # Both options are read defensively: JAX renames its flags between releases.
  if getattr(jax.config, 'jax_cpu_collectives_implementation', 'gloo') is None:
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if hasattr(jax.config, 'jax_enable_preemption_service'):
    jax.config.update('jax_enable_preemption_service', False)
  where = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS')
  try:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  except Exception as e:  # noqa: BLE001 (JAX raises ValueError, RuntimeError, XlaRuntimeError)
    text = str(e).strip().splitlines()
    raise JaxganError(
        'jax.distributed.initialize failed'
        + (f' (coordinator {where})' if where else '') + ': '
        + (text[0] if text else type(e).__name__)) from None
  logging.info('jax.distributed initialised: process %d of %d, %d local of %d devices',
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count())


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
