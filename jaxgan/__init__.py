"""jaxgan: GAN training in JAX/Flax (CycleGAN first) with exact resume."""

import os

# TensorFlow is only the input pipeline here; its C++ start-up chatter is noise.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

__version__ = '0.1.0'
