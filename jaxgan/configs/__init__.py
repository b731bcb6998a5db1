"""Experiment configs: one module per GAN (its experiment name), each with
`get_config(variant)` and `VARIANTS` (variant name -> the function that makes it from
the base config); `common` holds the keys every GAN shares and is not an experiment."""
