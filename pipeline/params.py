"""Strict schema for `configs/params.yaml`: one section per stage, unknown keys are errors."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class Strict(BaseModel):
    # strict: a quoted "3" in YAML is a typo to report, not a number to coerce
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class IngestParams(Strict):
    min_letters: int = Field(2, ge=0, description="Cards with fewer letters are rejected as junk.")
    junk_phrases: list[str] = Field(
        default_factory=lambda: ["se baksiden", "se bak", "snu", "se andre siden", "ingen kommentar"],
        description="Whole-card texts (case-insensitive) that are rejected as junk.",
    )


class NormaliseParams(Strict):
    repair_letters: bool = True
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


class EmbedParams(Strict):
    backend: str = Field("e5-small-q4", description="'e5-small-q4' or 'sentence-transformers:<name or path>'.")
    batch_size: int = Field(64, ge=1, le=4096)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        from pipeline.embed import check_backend_name  # embed imports this module

        check_backend_name(name)
        return name


class UmapParams(Strict):
    n_neighbors: int = Field(15, ge=2)
    n_components: int = Field(5, ge=2)
    min_dist: float = Field(0.0, ge=0.0, le=1.0)


class HdbscanParams(Strict):
    min_cluster_size: int = Field(5, ge=2)
    min_samples: int = Field(3, ge=1)


class AgglomerativeParams(Strict):
    distance_threshold: float = Field(0.8, gt=0.0, le=2.0, description="Cosine distance that stops merging.")
    min_cluster_size: int = Field(3, ge=1, description="Smaller groups become outliers.")


class ClusterParams(Strict):
    seed: int = 42
    algorithm: Literal["auto", "hdbscan", "agglomerative"] = "auto"
    small_corpus_max: int = Field(
        120, ge=0, description="With 'auto', corpora up to this many cards use the agglomerative fallback."
    )
    max_outlier_share: float = Field(
        0.5, ge=0.0, le=1.0, description="With 'auto', HDBSCAN leaving more outliers than this falls back."
    )
    center: bool = Field(True, description="Subtract the corpus mean embedding before clustering.")
    umap: UmapParams = UmapParams()
    hdbscan: HdbscanParams = HdbscanParams()
    agglomerative: AgglomerativeParams = AgglomerativeParams()
    ngram_max: int = Field(2, ge=1, le=3)
    top_n_words: int = Field(8, ge=1, le=30)
    label_words: int = Field(3, ge=1, le=10)


class MapParams(Strict):
    emergent_threshold: float = Field(
        0.05, ge=-1.0, le=1.0, description="Below this similarity to every taxonomy theme a cluster is emergent."
    )
    temperature: float = Field(0.05, gt=0.0, description="Softmax temperature turning similarities into confidence.")
    cluster_weight: float = Field(
        0.3, ge=0.0, le=1.0, description="Weight of the cluster centroid vs. the card's own evidence."
    )


class ReportParams(Strict):
    quotes_per_theme: int = Field(4, ge=3, le=5)


class Params(Strict):
    ingest: IngestParams = IngestParams()
    normalise: NormaliseParams = NormaliseParams()
    embed: EmbedParams = EmbedParams()
    cluster: ClusterParams = ClusterParams()
    map: MapParams = MapParams()
    report: ReportParams = ReportParams()

    def digest(self) -> str:
        """sha256 of the canonical params, recorded in the run manifest."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ParamsError(ValueError):
    """Params file that does not match the schema; the message names the key and the value."""


def load_params(path: str | Path) -> Params:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParamsError(f"{path}: cannot read params: {exc}") from exc
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of stage sections, found {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}={err.get('input')!r}: {err['msg']}" for err in exc.errors()
        )
        raise ParamsError(f"{path}: {problems}") from exc
