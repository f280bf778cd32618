"""Engines: where the heavy stages run their partitions (`engine` params).

- `local`: in this process, partitions one after another (the stages keep their own threads or
  forked workers inside a partition);
- `ray`: partitions as Ray tasks, or on Ray actors that load a model once and keep it (one
  encoder per worker); on the cluster at `engine.address`, or on one started on this machine.

Both take the same partitions, cut by the stage from `engine.partition_size` (never from the
number of workers), and give back the results in partition order, so a stage's output does not
depend on the engine. Work is handed out a few partitions per worker at a time, so a worker's
memory is bounded by the partition size, not by the corpus. The driver of normalise (above
`near_duplicates.SPILL_MIN_TEXTS` cards) and of embed streams the cards in batches and spills to
disk what spans the corpus; ingest streams too; cluster, map and report still hold every card's vector
(docs/scaling.md has the figures).

Functions sent to Ray must be module-level functions of `pipeline` (workers import them); the
driver ships its own copy of the package to the workers (`runtime_env.py_modules`), so they run
this very code.
"""
from __future__ import annotations

import logging
import os
import resource
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pipeline.params import EngineParams

log = logging.getLogger(__name__)
IN_FLIGHT_PER_WORKER = 2  # partitions handed to each worker at once: one running, one waiting


def _peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _measured(fn: Callable, *args):
    """fn(*args), with this worker's process id and peak resident memory (GiB) so far."""
    return fn(*args), os.getpid(), _peak_gib()


class _Holder:
    """A Ray actor's state: made once by `make()` (an encoder, say), then given every partition."""

    def __init__(self, make: Callable):
        self.state = make()

    def run(self, fn: Callable, part):
        return _measured(fn, self.state, part)


class LocalEngine:
    kind = "local"

    def __init__(self, params: EngineParams):
        self.params = params

    def map(self, fn: Callable, parts: Iterable, *shared) -> Iterator:
        """fn(part, *shared) for each part, in order."""
        for part in parts:
            yield fn(part, *shared)

    def gpus(self) -> float:
        """GPUs for workers to ask for: none here (a local backend finds its device itself, `embed.device`)."""
        return 0.0

    def map_with(self, make: Callable, fn: Callable, parts: Iterable) -> Iterator:
        """fn(state, part) for each part, in order, with one `state = make()` for all."""
        state = make()
        for part in parts:
            yield fn(state, part)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RayEngine(LocalEngine):
    kind = "ray"

    def __init__(self, params: EngineParams):
        super().__init__(params)
        self.peaks: dict[int, float] = {}  # worker process id -> peak resident GiB reported
        self._started = False

    def _ray(self):
        import ray

        if not self._started:
            import pipeline

            package = str(Path(pipeline.__file__).resolve().parent)
            options = dict(runtime_env={"py_modules": [package]}, include_dashboard=False, log_to_driver=False,
                           logging_level=logging.WARNING, configure_logging=False)
            if self.params.address:
                if self.params.address.rpartition(":")[0] in ("127.0.0.1", "localhost"):
                    from ray._private import ray_constants

                    # Ray rewrites a loopback address to this machine's network address (for clusters
                    # across machines); a cluster on loopback is joined on loopback, as Ray does where
                    # it supports one machine only.
                    ray_constants.ENABLE_RAY_CLUSTER = False
                ray.init(address=self.params.address, **options)
            else:
                ray.init(num_cpus=self.params.workers or os.cpu_count() or 1, **options)
            self._started = True
            log.info("engine: ray cluster with %d CPUs (%s)", int(ray.cluster_resources().get("CPU", 0)),
                     self.params.address or "started for this run")
        return ray

    def gpus(self) -> float:
        """The GPUs the Ray cluster has."""
        return float(self._ray().cluster_resources().get("GPU", 0))

    def workers(self) -> int:
        ray = self._ray()
        return max(1, self.params.workers or int(ray.cluster_resources().get("CPU", 1)))

    def _gather(self, submit: Callable, parts: Iterable, width: int) -> Iterator:
        """Results of submit(part) (an object ref) in order, with at most `width` parts in flight."""
        ray = self._ray()
        pending: deque = deque()
        for part in parts:
            pending.append(submit(part))
            if len(pending) >= width:
                yield self._take(ray.get(pending.popleft()))
        while pending:
            yield self._take(ray.get(pending.popleft()))

    def _take(self, measured):
        result, pid, peak = measured
        self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)
        return result

    def map(self, fn: Callable, parts: Iterable, *shared) -> Iterator:
        ray = self._ray()
        task = ray.remote(num_cpus=1)(_measured)
        refs = [ray.put(value) for value in shared]  # sent to the object store once, not with every part
        yield from self._gather(lambda part: task.remote(fn, part, *refs), parts,
                                IN_FLIGHT_PER_WORKER * self.workers())

    def map_with(self, make: Callable, fn: Callable, parts: Iterable, num_gpus: float = 0) -> Iterator:
        ray = self._ray()
        holder = ray.remote(num_cpus=1, num_gpus=num_gpus)(_Holder)
        actors = [holder.remote(make) for _ in range(self.workers())]
        turn = iter(range(1 << 62))
        try:
            # Round robin: each actor gets every n-th part; results still come back in order.
            yield from self._gather(lambda part: actors[next(turn) % len(actors)].run.remote(fn, part), parts,
                                    IN_FLIGHT_PER_WORKER * len(actors))
        finally:
            for actor in actors:
                ray.kill(actor)

    def close(self) -> None:
        if self._started:
            import ray

            if self.peaks:
                log.info("engine: %d ray workers, peak memory per worker %.2f GiB (largest), %.2f GiB (mean)",
                         len(self.peaks), max(self.peaks.values()), sum(self.peaks.values()) / len(self.peaks))
            ray.shutdown()
            self._started = False


def open_engine(params: EngineParams | None) -> LocalEngine:
    """The engine `params` name (local when None); use it as a context manager, so Ray is shut down."""
    params = params if params is not None else EngineParams()
    return RayEngine(params) if params.kind == "ray" else LocalEngine(params)
