"""numba's on-disk cache for UMAP, pynndescent and HDBSCAN, used by the cluster stage and the report's card map.

Imports nothing from pipeline/, so the report does not load the cluster stage for it.
"""
from __future__ import annotations


def enable_jit_cache(packages: tuple[str, ...] = ("umap", "pynndescent", "hdbscan")) -> int:
    """Let numba keep the compiled code of UMAP and friends on disk, as it does for `cache=True`.

    Most of their functions are compiled afresh in every process: over a minute per cluster run
    on 2 cores, far more than UMAP itself needs at 10k cards. Compiled code does not change
    results. Returns how many functions were switched.
    """
    import sys

    from numba.core.caching import FunctionCache
    from numba.core.dispatcher import Dispatcher

    switched = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for obj in list(vars(module).values()):
            if isinstance(obj, Dispatcher) and not isinstance(obj._cache, FunctionCache):
                obj.enable_caching()
                switched += 1
    return switched
