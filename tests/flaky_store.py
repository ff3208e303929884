"""An fsspec store whose calls fail on demand: ``flaky://`` is the in-memory store behind a fault injector.

``FlakyStore.fail("open", ConnectionResetError(...), times=2)`` makes the next two opens
fail; every call is recorded in ``FlakyStore.calls`` (method, path) so a test can check the
order of operations. It shares ``memory://``'s files, so data written with the memory store
are read through the flaky one. Registered for the whole test process; :func:`reset`
forgets queued faults and recorded calls.
"""

from __future__ import annotations

import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem


class FlakyStore(MemoryFileSystem):
    protocol = ("flaky",)
    faults: dict[str, list[BaseException]] = {}
    calls: list[tuple[str, str]] = []

    @classmethod
    def fail(cls, method: str, error: BaseException, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` (``open``, ``info``, ``put_file``, ``rm``) raise ``error``."""
        cls.faults.setdefault(method, []).extend([error] * times)

    @classmethod
    def pending(cls) -> int:
        return sum(len(queue) for queue in cls.faults.values())

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, str) and path.startswith("flaky://"):
            path = path[len("flaky://") :]
        return super()._strip_protocol(path)

    def _call(self, method: str, path) -> None:
        FlakyStore.calls.append((method, str(path)))
        queue = FlakyStore.faults.get(method)
        if queue:
            raise queue.pop(0)

    def _open(self, path, mode="rb", **kwargs):
        self._call("open", path)
        return super()._open(path, mode, **kwargs)

    def info(self, path, **kwargs):
        self._call("info", path)
        return super().info(path, **kwargs)

    def put_file(self, lpath, rpath, **kwargs):
        self._call("put_file", rpath)
        return super().put_file(lpath, rpath, **kwargs)

    def rm(self, path, recursive=False, maxdepth=None):
        for one in path if isinstance(path, list) else [path]:
            self._call("rm", one)
        return super().rm(path, recursive=recursive, maxdepth=maxdepth)


fsspec.register_implementation("flaky", FlakyStore, clobber=True)


def reset() -> None:
    FlakyStore.faults.clear()
    FlakyStore.calls.clear()


def remove(root: str) -> None:
    """Delete ``root`` (a path in the shared in-memory store) and everything under it."""
    memory = fsspec.filesystem("memory")
    if memory.exists(root):
        memory.rm(root, recursive=True)


@pytest.fixture
def flaky_root():
    """A fresh root in the in-memory store, read through ``flaky://``; faults forgotten afterwards."""
    root = f"/flaky-{uuid.uuid4().hex[:8]}"
    reset()
    yield root
    reset()
    remove(root)
