"""Parallel preprocessing of large extracts on Dask: partitions in, a clean Parquet dataset out.

:func:`preprocess` is the entry point; :func:`read_split`, :func:`training_sample` and
:func:`holdout_sample` read what it wrote. See :mod:`synth.preprocess.pipeline` for the picture.
"""

from synth.preprocess.dataset import holdout_sample, read_split, training_sample
from synth.preprocess.pipeline import Prepared, preprocess

__all__ = ["Prepared", "holdout_sample", "preprocess", "read_split", "training_sample"]
