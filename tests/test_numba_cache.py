"""Tests for pipeline.numba_cache: UMAP's compiled code kept on disk."""
import pytest

from pipeline.numba_cache import enable_jit_cache


@pytest.mark.slow
def test_umaps_jitted_functions_are_switched_to_the_disk_cache_once():
    import sys

    import umap  # noqa: F401  (its numba functions are what gets switched)
    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    enable_jit_cache()
    assert enable_jit_cache() == 0  # all switched already
    dispatchers = [obj for name, module in list(sys.modules.items()) if module and name.split(".")[0] == "umap"
                   for obj in vars(module).values() if isinstance(obj, Dispatcher)]
    assert dispatchers and all(isinstance(d._cache, FunctionCache) for d in dispatchers)


def test_packages_not_imported_are_left_alone():
    assert enable_jit_cache(packages=("no_such_package_here",)) == 0
