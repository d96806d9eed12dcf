"""The ``xinwen`` command: train, configs, eval, first-stage, lexical, suggest, prepare-encoder, score, export."""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

logger = logging.getLogger("xinwen")


def _offline_defaults() -> None:
    # Metrics and data are local; never let evaluate/datasets wait on the hub or ping counters.
    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cmd_train(args) -> int:
    from xinwen.training.config.loading import resolve_config
    from xinwen.training.config.sections import load_config

    path = resolve_config(args.config)
    cfg = load_config(path, args.overrides)
    if args.print_config:
        _print_config(cfg, path, args.overrides)
        return 0
    if not sys.stderr.isatty():  # redirected to a log file: no progress bars in it, only log lines
        from transformers.utils.logging import disable_progress_bar

        disable_progress_bar()
    if cfg.task == "topic" and cfg.recipe == "fewshot":
        from xinwen.training.topic.fewshot.recipe import train_fewshot

        train_fewshot(cfg, overwrite=args.overwrite)  # its dev report, if any, is in metrics.json
    elif cfg.task == "topic":
        from xinwen.training.topic.train import train_topic
        from xinwen.training.topic.evaluate import evaluate_topic_folder

        result = train_topic(cfg, overwrite=args.overwrite)
        if not args.no_eval and _is_main_process():
            evaluate_topic_folder(cfg.train.output_dir, data=None, baseline=True,
                                  dev_probabilities=result.dev_probabilities,
                                  fitted_baseline=result.fitted_baseline)
    else:
        from xinwen.training.headline.train import train_headline
        from xinwen.training.headline.evaluate import evaluate_headline_folder

        train_headline(cfg, overwrite=args.overwrite)
        if not args.no_eval and _is_main_process():
            evaluate_headline_folder(cfg.train.output_dir, data=None)
    return 0


def _is_main_process() -> bool:
    """Under `accelerate launch` only rank 0 writes the eval report (the others would race it)."""
    return os.environ.get("RANK", "0") == "0"


def _print_config(cfg, path, overrides: list[str]) -> None:
    import yaml

    from xinwen.training.config.loading import to_dict

    header = f"# resolved from {path}" + (f" with {' '.join(overrides)}" if overrides else "") + ", every default filled in\n"
    print(header + yaml.safe_dump(to_dict(cfg), allow_unicode=True, sort_keys=False), end="")  # the answer


def _cmd_configs(args) -> int:
    from xinwen.training.config.loading import ConfigError, bundled_configs

    bundled = bundled_configs()
    if args.name is None:
        for name, path in bundled.items():
            print(f"{name:10s} {_summary(path)}")  # the command's answer
        print("\nrun one: xinwen train NAME [key=value ...]; show one: xinwen configs NAME")
        return 0
    if args.name not in bundled:
        raise ConfigError([f"no bundled config {args.name!r}; expected one of {sorted(bundled)}"], "xinwen configs")
    print(bundled[args.name].read_text(encoding="utf-8"), end="")
    return 0


def _summary(path) -> str:
    """The first comment line after the command line: what the config trains."""
    comments = [line.lstrip("# ").strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    return next((c for c in comments[1:] if c), "")


def _cmd_eval(args) -> int:
    from xinwen.inference.settings import ClassifierSettings
    from xinwen.training.config.loading import ConfigError

    if args.output and Path(args.output).exists() and not Path(args.output).is_dir():
        raise ConfigError([f"--output {args.output} is a file, expected a folder for the report (the file is "
                           "left as it is); choose a folder name"], "xinwen eval")
    task = ClassifierSettings.load(args.model_dir).task if not _is_headline(args.model_dir) else "headline"
    if task == "headline":
        from xinwen.training.headline.evaluate import evaluate_headline_folder

        if args.long_text or args.max_length:
            raise ConfigError(["--long-text/--max-length apply to topic models; a headline model reads "
                               "the length it was trained with (drop the flags)"], "xinwen eval")

        options = {"max_chars": args.max_chars} if args.max_chars is not None else {}
        if args.no_rerank:
            options["rerank"] = False
        evaluate_headline_folder(args.model_dir, data=args.data, output=args.output, **options)
    else:
        if args.max_chars is not None or args.no_rerank:
            raise ConfigError(["--max-chars/--no-rerank apply to headline models; a topic model writes no "
                               "headline (drop the flags)"], "xinwen eval")
        from xinwen.training.topic.evaluate import evaluate_topic_folder

        evaluate_topic_folder(args.model_dir, data=args.data, output=args.output, baseline=not args.no_baseline,
                              long_text=args.long_text, max_length=args.max_length)
    return 0


def _is_headline(folder: str) -> bool:
    import json

    p = Path(folder, "xinwen.json")
    return p.is_file() and json.loads(p.read_text()).get("task") == "headline"


def _cmd_first_stage(args) -> int:
    import json

    from xinwen.inference.topic.first_stage import remove_first_stage
    from xinwen.training.topic.first_stage_fit import FirstStageOptions, fit_first_stage

    if args.remove:
        if remove_first_stage(args.model_dir):
            logger.info("removed the first stage from %s", args.model_dir)
        else:  # a mistyped folder must not read as done
            logger.warning("%s holds no first stage (first_stage.json); nothing removed", args.model_dir)
        return 0
    report = fit_first_stage(FirstStageOptions(model_dir=args.model_dir, data=args.data, holdout=args.holdout,
                                               agreement=args.agreement, min_accepted=args.min_accepted))
    print(json.dumps(report, indent=2, ensure_ascii=False))  # the command's answer
    return 0


def _cmd_lexical(args) -> int:
    import json

    from xinwen.training.topic.lexical_fit import fit_lexical_into

    report = fit_lexical_into(args.model_dir, weight=args.weight)
    print(json.dumps(report, indent=2, ensure_ascii=False))  # the command's answer
    return 0


def _cmd_suggest(args) -> int:
    from xinwen.inference.records.readers import Fields, RecordReader
    from xinwen.inference.topic.classifier import NewsClassifier
    from xinwen.training.topic.suggest import read_unlabelled, suggest, write_suggestions

    problem = _suggest_output_problem(Path(args.output), Path(args.input), args.overwrite)
    if problem:
        logger.error("--output %s: %s", args.output, problem)
        return 2
    fields = Fields.from_column_flags(args.body_column, args.title_column, args.id_column)
    classifier = NewsClassifier.from_pretrained(args.model_dir)  # a wrong folder fails before the input is read
    records = read_unlabelled(RecordReader(args.input, fields))
    if not records:
        logger.error("--input %s: no article to score (empty, or every record skipped: see above)", args.input)
        return 2
    if len(records) < args.n:
        logger.warning("--n %d: the input has %d usable articles; suggesting all of them", args.n, len(records))
    picked = suggest(classifier, records, args.n, batch_size=args.batch_size)
    write_suggestions(Path(args.output), picked, fields.id, Path(args.input))
    logger.info("wrote %d articles to label to %s: fill in the label column, then add the rows to your "
                "training file", len(picked), args.output)
    return 0


def _suggest_output_problem(output: Path, source: Path, overwrite: bool) -> str | None:
    if output.resolve() == source.resolve():
        return "this is the --input file; fix: write the suggestions to another file"
    if output.suffix.lower() != ".csv":
        return "expected a .csv file (the suggestions are a CSV to fill in, read back by its suffix)"
    if output.is_dir():
        return "is a folder; fix: name a .csv file"
    if output.exists() and not overwrite:
        return "exists; fix: choose another file, or pass --overwrite to replace it"
    if not output.parent.is_dir():
        return f"folder {output.parent} does not exist; fix: create it or choose another"
    return None


def _cmd_prepare(args) -> int:
    from xinwen.inference.encoders.builtin import prepare_builtin_encoder

    print(prepare_builtin_encoder(force=args.force))
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def _lexical_weight(text: str) -> float:
    """The expert's exponent: the same range as the config key lexical.weight."""
    from xinwen.training.config.sections import LexicalSection

    try:
        weight = float(text)
        if weight != weight:  # nan passes every range comparison
            raise ValueError(text)
        LexicalSection(weight=weight)
    except ValueError as err:  # not a number, or out of range (ConfigError is a ValueError)
        raise argparse.ArgumentTypeError(f"expected a number from 0 (no expert) to 4, got {text!r}"
                                         " (0.5 is the default; 1 = as strong as the encoder)") from err
    return weight


def build_parser() -> argparse.ArgumentParser:
    # Over 60 lines on purpose: flat argparse declarations, one block per subcommand, so the
    # whole command line can be read in one place.
    from xinwen import __version__

    parser = argparse.ArgumentParser(prog="xinwen", description="Chinese news topics and headlines")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"xinwen {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train from a bundled config (topic, headline) or a YAML file (+ key=value overrides)")
    p.add_argument("config", help="a bundled config name (`xinwen configs` lists them) or a YAML path")
    p.add_argument("overrides", nargs="*", default=[], help="dotted overrides, e.g. train.epochs=2")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation report after training")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in train.output_dir (its files are deleted) instead of refusing it")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (every default filled in) and exit without training")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("configs", help="list the bundled configs, or print one")
    p.add_argument("name", nargs="?", default=None, help="print this config (e.g. topic)")
    p.set_defaults(func=_cmd_configs)

    p = sub.add_parser("eval", help="evaluate a trained folder, beside a baseline")
    p.add_argument("model_dir")
    p.add_argument("--data", default=None, help="file (JSONL/CSV/Parquet) or builtin name; default: the dev split")
    p.add_argument("--output", default=None, help="report folder (default: MODEL_DIR/eval)")
    p.add_argument("--no-baseline", action="store_true")
    p.add_argument("--max-chars", type=_non_negative_int, default=None,
                   help="headline models: longest headline in characters (default: the folder's; 0 = no limit)")
    p.add_argument("--no-rerank", action="store_true",
                   help="headline models: take the beam's most probable headline, not the best-checked one")
    p.add_argument("--long-text", default=None, choices=["head", "head_tail", "chunks"],
                   help="topic models: override how text beyond max length is read (default: as saved)")
    p.add_argument("--max-length", type=int, default=None,
                   help="topic models: override the tokens per window (default: as saved)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("first-stage", help="fit a fast first stage into a topic model folder (speeds up score)",
                       description="Distil a character n-gram model from the classifier's own answers and "
                                   "save it beside the model; `score`, NewsClassifier and NewsAnalyzer then let "
                                   "it answer the articles it is sure of and send the rest to the transformer.")
    p.add_argument("model_dir")
    p.add_argument("--data", default=None, help="articles to learn from (file or builtin:inews-topics@train); "
                   "labels are not needed. Default: the model's training split")
    p.add_argument("--holdout", default=None, help="other articles, to choose the accept level on "
                   "(default: the model's dev split)")
    p.add_argument("--agreement", type=float, default=0.99,
                   help="accepted answers must agree with the classifier this often on the held-out articles")
    p.add_argument("--min-accepted", type=int, default=50)
    p.add_argument("--remove", action="store_true", help="delete the folder's first stage instead")
    p.set_defaults(func=_cmd_first_stage)

    p = sub.add_parser("lexical", help="(re)fit the character n-gram expert of a topic model folder",
                       description="Fit the lexical expert (TF-IDF + LR over whole articles, multiplied into "
                                   "the encoder's probabilities) from the folder's own config, e.g. after "
                                   "changing its weight, or for a folder trained before it existed. "
                                   "--weight 0 removes it.")
    p.add_argument("model_dir")
    p.add_argument("--weight", type=_lexical_weight, default=None, help="exponent of the n-gram model (default: the config's)")
    p.set_defaults(func=_cmd_lexical)

    p = sub.add_parser("suggest", help="pick the unlabelled articles a topic model would learn most from",
                       description="Score unlabelled articles with a topic model and write the N to label next "
                                   "(least sure, and unlike each other) to a CSV with an empty label column.")
    p.add_argument("model_dir")
    p.add_argument("--input", required=True, help="unlabelled articles (JSONL/CSV/Parquet)")
    p.add_argument("--output", required=True, help="CSV to write (refused if it exists, unless --overwrite)")
    p.add_argument("--n", type=_positive_int, default=50, help="how many articles to suggest")
    p.add_argument("--title-column", default=None, help="default: title, if the file has it ('' = none)")
    p.add_argument("--body-column", default="body")
    p.add_argument("--id-column", default=None, help="default: id, if the file has it; else SOURCE:LINE")
    p.add_argument("--batch-size", type=_positive_int, default=32)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_suggest)

    p = sub.add_parser("prepare-encoder", help="convert the offline e5 encoder (runs on first use anyway)")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_prepare)

    try:
        from xinwen.inference.scoring.cli import add_score_parsers
    except ImportError:  # scoring module not present in a partial install
        pass
    else:
        add_score_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _offline_defaults()
    parser = build_parser()
    args = _parse(parser, argv)
    _setup_logging(args.verbose)
    from xinwen.inference.encoders.loading import ModelFolderError
    from xinwen.inference.records.readers import InputError
    from xinwen.training.config.loading import ConfigError
    from xinwen.training.data.files import DataError

    try:
        return args.func(args)
    except (ConfigError, DataError, ModelFolderError, InputError, FileNotFoundError) as err:
        logger.error("%s", err)
        return 2


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but ``train`` overrides may also follow its options
    (``xinwen train topic --print-config train.epochs=1``), which argparse alone refuses."""
    _refuse_unknown_leading_options(parser, sys.argv[1:] if argv is None else argv)
    args, extra = parser.parse_known_args(argv)
    if extra and args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


TOP_LEVEL_OPTIONS = ("-h", "--help", "-v", "--verbose", "--version")  # build_parser's own


def _refuse_unknown_leading_options(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An unknown option before the command: argparse would only say the command is missing."""
    for arg in argv:
        if not arg.startswith("-"):
            return  # the command: what follows is its own
        name = arg.split("=", 1)[0]
        if not any(option == name or (name.startswith("--") and option.startswith(name))  # --verb: --verbose
                   for option in TOP_LEVEL_OPTIONS):
            parser.error(f"unrecognized option {arg}: xinwen's own options are -v/--verbose, --version and -h; "
                         "a command's options follow the command (xinwen COMMAND --help)")


ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "accelerate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not sys.stderr.isatty():  # a log file: no colour codes in it
        _strip_ansi_from_records()


def _strip_ansi_from_records() -> None:
    """Libraries (transformers' load report) put colour codes in their messages and log through
    their own handlers; cleaning each record as it is made reaches every handler."""
    make_record = logging.getLogRecordFactory()
    if getattr(make_record, "strips_ansi", False):
        return

    def plain_record(*args, **kwargs):
        record = make_record(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = ANSI_ESCAPE.sub("", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(ANSI_ESCAPE.sub("", a) if isinstance(a, str) else a for a in record.args)
        return record

    plain_record.strips_ansi = True
    logging.setLogRecordFactory(plain_record)


if __name__ == "__main__":
    sys.exit(main())
