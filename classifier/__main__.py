"""``python -m classifier train | score | models | evaluate``: the classifier's command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from classifier.comment import Comment
from classifier.errors import ClassifierError
from classifier.labelstore import DEFAULT_DATABASE_URL
from classifier.registry import DEFAULT_ROOT, Registry

logger = logging.getLogger("classifier")

DEFAULT_DATA_DIR = Path("../shared/data")
EXIT_USAGE = 2


class CommandError(Exception):
    """A user mistake on the command line: reported in one line with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m classifier", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train the default models from the public data sets")
    train.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    train.add_argument("--registry", type=Path, default=DEFAULT_ROOT)
    train.add_argument("--activate", action="store_true", help="make the new version the active one")
    train.add_argument("--sets", nargs="*", default=None, help="public sets to use (default: all)")
    train.add_argument(
        "--with-labels",
        action="store_true",
        help="add the site's labels from the label store; saves a candidate (never active)",
    )
    train.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="the service's database")
    train.add_argument(
        "--site-weight",
        type=float,
        default=None,
        help="total weight of the site's labels relative to one public set (default 3)",
    )
    train.add_argument(
        "--promote-if-better",
        action="store_true",
        help="with --with-labels: run the promotion guard and activate if it passes",
    )
    _guard_arguments(train)

    importer = commands.add_parser("import", help="load a labelled comment history into the label store")
    importer.add_argument("kind", choices=("wxr", "wp-csv", "disqus", "csv", "jsonl", "wp-db"))
    importer.add_argument(
        "file", help="the file; for wp-db the site's database, mysql://user:pass@host:3306/name"
    )
    importer.add_argument("--table-prefix", default="wp_", help="wp-db: the site's $table_prefix")
    importer.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="the service's database")
    importer.add_argument(
        "--label-attribute", default=None, help="csv/jsonl: the attribute a neutral 1/0 label column means"
    )

    thresholds = commands.add_parser("thresholds", help="suggest hold thresholds from the site's labels")
    thresholds.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="the service's database")
    thresholds.add_argument("--registry", type=Path, default=DEFAULT_ROOT)
    thresholds.add_argument(
        "--target-approved-error",
        type=float,
        default=0.01,
        help="max share of auto-approved comments later rejected (default 0.01)",
    )
    thresholds.add_argument(
        "--rescore",
        action="store_true",
        help="score with the active model instead of the scores recorded at the time",
    )

    score = commands.add_parser("score", help="score JSON lines from stdin, one JSON line out per input")
    score.add_argument("--registry", type=Path, default=DEFAULT_ROOT)
    score.add_argument("--model", default=None, help="version (default: the active one)")
    score.add_argument("--batch-size", type=int, default=500)
    score.add_argument("--no-reasons", action="store_true", help="skip reasons (faster)")

    models = commands.add_parser("models", help="list, promote and roll back model versions")
    models.add_argument("--registry", type=Path, default=DEFAULT_ROOT)
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="all versions, newest first")
    promote = actions.add_parser("promote", help="make VERSION the active model (after the guard)")
    promote.add_argument("version")
    promote.add_argument("--force", action="store_true", help="promote even if the guard fails")
    rollback = actions.add_parser("rollback", help="activate VERSION, or the previously active version")
    rollback.add_argument("version", nargs="?")
    for action in (promote, rollback):
        action.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="the service's database")
        action.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
        _guard_arguments(action)

    from classifier import evaluation

    evaluate = commands.add_parser("evaluate", help="per-source and leave-one-source-out evaluation")
    evaluation.add_arguments(evaluate)
    return parser


def _guard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument(
        "--auc-tolerance",
        type=float,
        default=0.01,
        help="how much lower a candidate's ROC AUC may be per attribute (default 0.01)",
    )


# -- train --------------------------------------------------------------------------------------------
def run_train(args: argparse.Namespace) -> int:
    from classifier import datasets
    from classifier.training import TrainParams, train

    data_dir: Path = args.data_dir
    if not data_dir.is_dir():
        raise CommandError(f"data directory {data_dir} does not exist (use --data-dir)")
    names = args.sets if args.sets else None
    if args.with_labels:
        return run_train_with_labels(args, names)
    if args.promote_if_better or args.site_weight is not None:
        raise CommandError("--promote-if-better and --site-weight need --with-labels")
    started = time.monotonic()
    examples = datasets.load_public(data_dir, names)
    if not examples:
        raise CommandError(f"no training examples found in {data_dir}")
    params = TrainParams()
    model = train(examples, params, progress=sys.stderr.isatty())
    used = list(names) if names else list(datasets.PUBLIC_SETS)
    extra: dict[str, Any] = {"training_data": _manifest(datasets, used)}
    registry = Registry(args.registry)
    version = registry.save(model, card_extra=extra)
    if args.activate:
        registry.activate(version)
    logger.info(
        "train model=%s seconds=%.1f activated=%s", version, time.monotonic() - started, args.activate
    )
    print(version)
    return 0


def _manifest(datasets: Any, names: list[str]) -> dict[str, Any]:
    manifest = getattr(datasets, "public_manifest", None)
    if manifest is None:
        return {"sets": names}
    try:
        return manifest(names)
    except Exception as err:  # noqa: BLE001 - the card is still useful without provenance
        logger.warning("manifest_error=%s", err)
        return {"sets": names}


def run_train_with_labels(args: argparse.Namespace, names: list[str] | None) -> int:
    from classifier import datasets, labelstore, learning
    from classifier.training import TrainParams

    if args.activate:
        raise CommandError("--with-labels saves a candidate; use --promote-if-better or `models promote`")
    weight = learning.DEFAULT_SITE_WEIGHT if args.site_weight is None else args.site_weight
    if not weight > 0:
        raise CommandError("--site-weight must be above 0")
    engine = labelstore.connect(args.database_url)
    site_labels = labelstore.load_site_labels(engine, weight=weight)
    engine.dispose()
    public = datasets.load_public(args.data_dir, names)
    if not public:
        raise CommandError(f"no training examples found in {args.data_dir}")
    registry = Registry(args.registry)
    used = list(names) if names else list(datasets.PUBLIC_SETS)
    candidate = learning.train_candidate(
        registry,
        public,
        site_labels,
        weight,
        TrainParams(),
        progress=sys.stderr.isatty(),
        card_extra={"training_data": _manifest(datasets, used)},
    )
    split = candidate.split
    print(
        f"candidate {candidate.version}: site labels trained {len(split.train)}, recent (held out) "
        f"{len(split.recent)}, frozen {len(split.frozen)}; weight {weight:g}"
    )
    if args.promote_if_better:
        outcome = learning.promote_if_better(
            registry,
            candidate.version,
            site_labels,
            candidate.public_holdout,
            args.reports_dir,
            _guard_config(args),
            candidate_model=candidate.model,
        )
        _print_outcome(outcome)
    else:
        print(f"not active; promote with: python -m classifier models promote {candidate.version}")
    print(candidate.version)
    return 0


def _guard_config(args: argparse.Namespace) -> Any:
    from classifier.promotion import GuardConfig

    if not 0 <= args.auc_tolerance < 1:
        raise CommandError("--auc-tolerance must be in [0, 1)")
    return GuardConfig(auc_tolerance=args.auc_tolerance)


def _print_outcome(outcome: Any) -> None:
    verdict = "passed" if outcome.guard.passed else "failed"
    state = "promoted" if outcome.promoted else "kept as candidate"
    print(f"guard {verdict}: {outcome.candidate} {state} (active before: {outcome.active_before or 'none'})")
    for reason in outcome.guard.reasons:
        print(f"  - {reason}")
    print(f"report: {outcome.report_path}")


# -- import -------------------------------------------------------------------------------------------
def run_import(args: argparse.Namespace) -> int:
    from classifier import datasets, labelstore, wordpress_db

    tally = datasets.SkipTally()
    options = {"label_attribute": args.label_attribute} if args.label_attribute else {}
    if options and args.kind not in ("csv", "jsonl"):
        raise CommandError("--label-attribute applies to csv and jsonl files only")
    if args.kind == "wp-db":
        site = wordpress_db.SiteDatabase.from_url(args.file, args.table_prefix)
        examples = wordpress_db.load_wp_database(site, on_skip=tally)
    else:
        path = Path(args.file)
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        examples = datasets.load_labelled_file(
            args.kind, path, source=f"import:{args.kind}", on_skip=tally, **options
        )
    engine = labelstore.connect(args.database_url)
    try:
        report = labelstore.ImportReport(skipped=dict(tally.counts))
        labelstore.import_examples(engine, examples, args.kind, report, progress=sys.stderr.isatty())
    finally:
        engine.dispose()
    print(f"imported {report.imported} rows, skipped {report.skipped_total}")
    for reason, count in sorted(report.skipped.items(), key=lambda item: -item[1]):
        print(f"  skipped {count}: {reason}")
    return 0


# -- thresholds ---------------------------------------------------------------------------------------
def run_thresholds(args: argparse.Namespace) -> int:
    from classifier import labelstore, thresholds

    if not 0 < args.target_approved_error < 1:
        raise CommandError("--target-approved-error must be between 0 and 1")
    engine = labelstore.connect(args.database_url)
    try:
        site_labels = labelstore.load_site_labels(engine)
    finally:
        engine.dispose()
    if not site_labels:
        raise CommandError("the label store holds no labelled comments yet")
    scores: list[dict[str, float]] = [dict(s.scores_at_time or {}) for s in site_labels]
    missing = [i for i, sc in enumerate(scores) if not sc] if not args.rescore else list(range(len(scores)))
    if missing:
        model = Registry(args.registry).load_active()
        matrix = model.predict([site_labels[i].example.comment for i in missing])
        from classifier.comment import ATTRIBUTES

        for row, i in enumerate(missing):
            scores[i] = {a: float(matrix[row, col]) for col, a in enumerate(ATTRIBUTES)}
        print(f"scored {len(missing)} labelled comments with model {model.version}")
    labels = [s.example.labels for s in site_labels]
    suggestions = thresholds.suggest_all(labels, scores, args.target_approved_error)
    chosen = {s.attribute: s.suggested for s in suggestions if s.suggested is not None}
    combined = thresholds.combined_human_share(scores, chosen) if chosen else None
    print(thresholds.format_suggestions(suggestions, args.target_approved_error, combined))
    return 0


# -- score --------------------------------------------------------------------------------------------
def _parse_line(line: str) -> Comment:
    try:
        obj = json.loads(line)
    except ValueError as err:
        raise ValueError(f"invalid JSON: {err}") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    text = obj.get("text")
    if not isinstance(text, str):
        raise ValueError("field 'text' must be a string")
    fields = {}
    for name in ("name", "email", "url", "language"):
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"field {name!r} must be a string")
        fields[name] = value
    return Comment(text=text, **fields)


def _batches(stream: TextIO, size: int) -> Iterator[list[tuple[int, str]]]:
    batch: list[tuple[int, str]] = []
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        batch.append((number, line))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_stream(model: Any, stream: TextIO, out: TextIO, batch_size: int = 500, explain: bool = True) -> int:
    """Score JSON lines from ``stream`` to ``out`` in order; returns the number of error lines."""
    errors = 0
    for batch in _batches(stream, batch_size):
        results: list[dict[str, Any] | None] = []
        comments: list[Comment] = []
        for number, line in batch:
            try:
                comments.append(_parse_line(line))
                results.append(None)
            except ValueError as err:
                results.append({"error": str(err), "line": number})
                errors += 1
        scores = iter(model.score(comments, explain=explain))
        for result in results:
            record = result if result is not None else next(scores).to_dict()
            out.write(json.dumps(record, ensure_ascii=False))
            out.write("\n")
        out.flush()
    return errors


def run_score(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise CommandError("--batch-size must be at least 1")
    registry = Registry(args.registry)
    model = registry.load(args.model) if args.model else registry.load_active()
    stdin = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
    errors = score_stream(model, stdin, sys.stdout, args.batch_size, explain=not args.no_reasons)
    if errors:
        logger.warning("score error_lines=%d", errors)
    return 0


# -- models -------------------------------------------------------------------------------------------
def run_models(args: argparse.Namespace) -> int:
    registry = Registry(args.registry)
    if args.action == "list":
        for card in registry.versions():
            marker = "*" if card.get("active") else " "
            print(
                f"{marker} {card['version']}  created={card.get('created_at', '?')}  "
                f"sklearn={card.get('sklearn_version', '?')}  commit={(card.get('git_commit') or '-')[:10]}"
                + (f"  error={card['error']}" if "error" in card else "")
            )
        return 0
    from classifier import learning

    if args.action == "promote":
        target = args.version
    else:
        target = args.version or _previous_version(registry)
    registry.card(target)  # a clear error for an unknown version before any slow loading
    site_labels, public_holdout = _guard_data(args, registry, target)
    outcome = learning.promote_if_better(
        registry,
        target,
        site_labels,
        public_holdout,
        args.reports_dir,
        _guard_config(args),
        force=args.force if args.action == "promote" else True,
        action=f"by hand ({args.action})",
    )
    _print_outcome(outcome)
    if args.action == "promote" and not outcome.promoted and target != outcome.active_before:
        print("not promoted: the guard failed (use --force to override)", file=sys.stderr)
        return 1
    print(target)
    return 0


def _previous_version(registry: Registry) -> str:
    current = registry.active_version()
    previous = [v for v in registry._history() if v != current]  # noqa: SLF001 - same package
    if not previous:
        raise CommandError("no earlier active version to roll back to")
    return previous[-1]


def _guard_data(args: argparse.Namespace, registry: Registry, version: str) -> tuple[list[Any], list[Any]]:
    """Site labels (if the label store is reachable) and the public held-out sample (if the data is)."""
    from classifier import datasets, labelstore, learning

    site_labels: list[Any] = []
    try:
        engine = labelstore.connect(args.database_url)
    except labelstore.LabelStoreError as err:
        logger.warning("guard without site labels: %s", err)
    else:
        try:
            site_labels = labelstore.load_site_labels(engine)
        finally:
            engine.dispose()
    public_holdout: list[Any] = []
    sets = registry.card(version).get("training_data") or {}
    names = [n for n in (sets if isinstance(sets, dict) else {}) if n in datasets.PUBLIC_SETS] or None
    if args.data_dir.is_dir():
        try:
            _, public_holdout = learning.public_split(datasets.load_public(args.data_dir, names))
        except ClassifierError as err:
            logger.warning("guard without public held-out rows: %s", err)
    else:
        logger.warning("guard without public held-out rows: %s is not a directory", args.data_dir)
    return site_labels, public_holdout


def run_evaluate(args: argparse.Namespace) -> int:
    from classifier import evaluation

    return int(evaluation.main(args) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handlers = {
        "train": run_train,
        "score": run_score,
        "models": run_models,
        "evaluate": run_evaluate,
        "import": run_import,
        "thresholds": run_thresholds,
    }
    try:
        return handlers[args.command](args)
    except (CommandError, ClassifierError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
