"""`innsikt` command line: one subcommand per stage (what `dvc.yaml` calls) and `run` for all of them.

The only module that exits: library code raises errors that name the file, row, column or
parameter, and this module turns them into one line on stderr and exit code 1.
"""
from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from jsonschema import ValidationError

from pipeline import cluster as cluster_stage
from pipeline import embed as embed_stage
from pipeline import ingest as ingest_stage
from pipeline import map as map_stage
from pipeline import normalise as normalise_stage
from pipeline import report as report_stage
from pipeline.cluster import ClusterError
from pipeline.ingest import IngestError
from pipeline.params import Params, ParamsError, load_params
from pipeline.records import SchemaError
from pipeline.report import ReportError
from pipeline.taxonomy import TaxonomyError

app = typer.Typer(
    help="Themes, taxonomy mapping and quotes from transcribed Norwegian workshop cards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
EXPECTED_ERRORS = (IngestError, ParamsError, SchemaError, ClusterError, TaxonomyError, ReportError, ValidationError)
MULTI = {"allow_extra_args": True}  # `--input a b c`: the extra paths arrive as ctx.args

ParamsOption = typer.Option(Path("configs/params.yaml"), "--params", help="Params file (one section per stage).")
OutOption = typer.Option(..., "--out", help="Output folder of the stage.")
CacheOption = typer.Option(Path(".cache/embeddings"), "--cache-dir", help="Embedding cache (kept between runs).")
TaxonomyOption = typer.Option(Path("configs/taxonomy.yaml"), "--taxonomy", help="Category taxonomy YAML.")


def guarded(command):
    """Expected errors become one line on stderr and exit code 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.INFO, format="innsikt: %(message)s", stream=sys.stderr)
        try:
            return command(*args, **kwargs)
        except EXPECTED_ERRORS as exc:
            message = exc.message if isinstance(exc, ValidationError) else str(exc)
            typer.echo(f"innsikt: error: {message}", err=True)
            raise typer.Exit(code=1) from exc

    return wrapper


def _inputs(ctx: typer.Context, first: list[Path]) -> list[Path]:
    return list(first) + [Path(arg) for arg in ctx.args]


@app.command(context_settings=MULTI)
@guarded
def ingest(
    ctx: typer.Context,
    input: list[Path] = typer.Option(..., "--input", help="Files or folders of cards and votes."),
    out: Path = OutOption,
    params: Path = ParamsOption,
) -> None:
    """Read every card and votes file into canonical records."""
    result = ingest_stage.run(inputs=_inputs(ctx, input), out_dir=out, params=load_params(params).ingest)
    rejected = int((result.cards["status"] == "rejected").sum())
    logging.info("ingest: %d cards (%d rejected), %d votes from %d files", len(result.cards), rejected,
                 len(result.votes), len(result.inputs))


@app.command()
@guarded
def normalise(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from ingest."),
    out: Path = OutOption,
    params: Path = ParamsOption,
) -> None:
    """Unicode, whitespace and æ/ø/å repair; mark exact duplicates."""
    normalise_stage.run(cards_path=cards, out_dir=out, params=load_params(params).normalise)


@app.command()
@guarded
def embed(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    out: Path = OutOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Embed the normalised texts, reusing the cache."""
    embed_stage.run(cards_path=cards, cache_dir=cache_dir, out_dir=out, params=load_params(params).embed)


@app.command()
@guarded
def cluster(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    embeddings: Path = typer.Option(..., "--embeddings", help="embeddings.parquet from embed."),
    out: Path = OutOption,
    model_dir: Path = typer.Option(..., "--model-dir", help="Where the BERTopic model is saved."),
    params: Path = ParamsOption,
) -> None:
    """Cluster the cards into themes with BERTopic."""
    loaded = load_params(params)
    embedder = cluster_stage.make_embedder(embed_stage.make_backend(loaded.embed.backend))
    cluster_stage.run(cards_path=cards, embeddings_path=embeddings, out_dir=out, model_dir=model_dir,
                      params=loaded.cluster, embedder=embedder)


@app.command("map")
@guarded
def map_command(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    embeddings: Path = typer.Option(..., "--embeddings", help="embeddings.parquet from embed."),
    clusters: Path = typer.Option(..., "--clusters", help="Output folder of cluster."),
    taxonomy: Path = TaxonomyOption,
    out: Path = OutOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Map every theme and card onto the taxonomy, or flag it as emergent."""
    map_stage.run(cards_path=cards, embeddings_path=embeddings, cluster_dir=clusters, taxonomy_path=taxonomy,
                  cache_dir=cache_dir, out_dir=out, params=load_params(params))


@app.command()
@guarded
def report(
    ingested: Path = typer.Option(..., "--ingested", help="Output folder of ingest (votes, manifest)."),
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    mapped: Path = typer.Option(..., "--mapped", help="Output folder of map."),
    taxonomy: Path = TaxonomyOption,
    out: Path = OutOption,
    params: Path = ParamsOption,
) -> None:
    """Write insights.json, report.md and report.html."""
    report_stage.run(ingest_dir=ingested, cards_path=cards, map_dir=mapped, taxonomy_path=taxonomy, out_dir=out,
                     params=load_params(params))


def run_all(*, inputs: list[Path], out: Path, params: Params, taxonomy: Path, cache_dir: Path) -> dict:
    """Every stage in one process, with the same functions the DVC stages call."""
    ingest_stage.run(inputs=inputs, out_dir=out / "ingest", params=params.ingest)
    normalise_stage.run(cards_path=out / "ingest" / "cards.parquet", out_dir=out / "normalise",
                        params=params.normalise)
    cards = out / "normalise" / "cards.parquet"
    embed_stage.run(cards_path=cards, cache_dir=cache_dir, out_dir=out / "embed", params=params.embed)
    embeddings = out / "embed" / "embeddings.parquet"
    backend = embed_stage.make_backend(params.embed.backend)
    cluster_stage.run(cards_path=cards, embeddings_path=embeddings, out_dir=out / "cluster",
                      model_dir=out / "models" / "bertopic", params=params.cluster,
                      embedder=cluster_stage.make_embedder(backend))
    map_stage.run(cards_path=cards, embeddings_path=embeddings, cluster_dir=out / "cluster", taxonomy_path=taxonomy,
                  cache_dir=cache_dir, out_dir=out / "map", params=params)
    return report_stage.run(ingest_dir=out / "ingest", cards_path=cards, map_dir=out / "map",
                            taxonomy_path=taxonomy, out_dir=out / "report", params=params)


@app.command("run", context_settings=MULTI)
@guarded
def run_command(
    ctx: typer.Context,
    input: list[Path] = typer.Option(..., "--input", help="Files or folders of cards and votes."),
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for all stage outputs."),
    taxonomy: Path = TaxonomyOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Run all stages in one process on any files or folders (no DVC needed)."""
    insights = run_all(inputs=_inputs(ctx, input), out=out, params=load_params(params), taxonomy=taxonomy,
                       cache_dir=cache_dir)
    counts = insights["run"]["counts"]
    logging.info("run: %d cards: %d assigned, %d outliers, %d rejected; %d themes; report at %s",
                 counts["cards"], counts["assigned"], counts["outlier"], counts["rejected"],
                 len(insights["themes"]), out / "report" / "report.html")


if __name__ == "__main__":
    app()
