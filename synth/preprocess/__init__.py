"""Parallel preprocessing of large extracts on Dask: partitions in, a clean Parquet dataset out.

:func:`preprocess` is the entry point; :func:`read_split` and :func:`training_sample`
read what it wrote. See :mod:`synth.preprocess.pipeline` for the picture.
"""

from synth.preprocess.dataset import read_split, training_sample
from synth.preprocess.pipeline import Prepared, preprocess

__all__ = ["Prepared", "preprocess", "read_split", "training_sample"]
