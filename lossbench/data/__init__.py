"""Data: synthetic generation, layout scanning, splits, datasets, transforms and samplers."""
