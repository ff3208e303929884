"""The Dask cluster partitions run on: quiet unless asked, one thread per worker process."""

from __future__ import annotations

import logging

import pytest

from synth.preprocess.cluster import dask_client


@pytest.mark.parametrize("verbose", [False, True])
def test_the_clusters_own_info_lines_show_only_when_verbose(verbose, caplog):
    caplog.set_level(logging.DEBUG)
    before = logging.getLogger("distributed").level
    with dask_client(workers=1, verbose=verbose) as client:
        assert client.submit(sum, [1, 2], pure=False).result() == 3
    info = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno == logging.INFO]
    if verbose:
        assert any("Scheduler at" in r.getMessage() for r in info)
    else:
        assert info == []
    assert logging.getLogger("distributed").level == before  # the caller's setting is restored
