"""Experiment configs: one module per GAN, each with `get_config(variant)` and `VARIANTS`."""
