"""jaxgan's data layer: sources of two-domain images and the input pipeline.

    source = load_source('aligned:/data/maps', seed=0, image_size=286)
    stream = train_batches(source.domains('train'), global_batch=1, load_size=286,
                           image_size=256, flip=True, paired=False, seed=0)

See `sources` (spec strings, image sets), `synthetic` (generated pairs with a known
map) and `pipeline` (tf.data batches, resumable by step).
"""

# The pipeline is imported first: its import hides the GPUs from TensorFlow, which must
# happen before any TF op runs (e.g. one a source might run while loading).
from jaxgan.data.pipeline import BatchStream
from jaxgan.data.pipeline import eval_batches
from jaxgan.data.pipeline import fixed_batch
from jaxgan.data.pipeline import train_batches
from jaxgan.data.sources import ArrayImageSet
from jaxgan.data.sources import Domains
from jaxgan.data.sources import FileImageSet
from jaxgan.data.sources import ImageSet
from jaxgan.data.sources import load_source
from jaxgan.data.sources import Source
from jaxgan.data.synthetic import a_from_b
from jaxgan.data.synthetic import b_from_a
from jaxgan.data.synthetic import synthetic_pairs

__all__ = [
    'ArrayImageSet', 'BatchStream', 'Domains', 'FileImageSet', 'ImageSet', 'Source',
    'a_from_b', 'b_from_a', 'eval_batches', 'fixed_batch', 'load_source',
    'synthetic_pairs', 'train_batches',
]
