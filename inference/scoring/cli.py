"""``xinwen score`` and ``xinwen export``; also runnable alone for multi-process jobs:

    xinwen score --classifier runs/topic --input articles.jsonl --output scored.jsonl
    accelerate launch --num_processes 2 -m xinwen.inference.scoring.cli score --classifier runs/topic \\
        --input articles.jsonl --output scored.jsonl

Kept free of heavy imports at module level: ``xinwen --help`` imports this file.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from xinwen.inference.settings import BACKENDS, RECHECK_MARGIN

logger = logging.getLogger("xinwen.score")


def add_score_parsers(subparsers) -> None:
    """The ``score`` and ``export`` subcommands (``xinwen`` and this module's own parser add them)."""
    add_score_parser(subparsers)
    add_export_parser(subparsers)


def add_score_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="score a JSONL/CSV/Parquet file of articles: topic, confidence, headline",
        description="Stream a file of articles through the classifier (and headline generator) into a "
                    "JSONL/CSV/Parquet file (format from the extension). Records that cannot be scored go "
                    "to OUTPUT.rejects.jsonl with their line and reason. Crash-safe: rerun with --resume.")
    p.add_argument("--classifier", required=True, help="classifier folder (from `xinwen train` or `xinwen export`)")
    p.add_argument("--headline", default=None, help="headline generator folder; adds a 'headline' column")
    p.add_argument("--input", required=True, help="JSONL, CSV or Parquet file")
    p.add_argument("--output", required=True, help="JSONL, CSV or Parquet file (by extension)")
    p.add_argument("--encoding", default="auto", help="auto (UTF-8, else GB18030/GBK), utf-8, gbk or gb18030")
    # Title and id default to None ("title"/"id" if the file has them): a column named on purpose
    # must exist, and a typo in it stops the job before any work.
    p.add_argument("--body-column", default="body", help="'' for a file of titles only")
    p.add_argument("--title-column", default=None, help="default: 'title' when the file has it; '' for none")
    p.add_argument("--id-column", default=None,
                   help="passed through to the output (default: 'id' when the file has it; '' for none)")
    p.add_argument("--keep", default="", help="more columns to pass through, comma-separated")
    p.add_argument("--backend", default="auto", choices=("auto",) + BACKENDS,
                   help="auto: what `xinwen export` recorded in the folder, else torch. int8-checked: int8, "
                        f"with the rows int8 is unsure about (top-two probability gap < {RECHECK_MARGIN}) "
                        "recomputed in fp32")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: GPU if present)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    p.add_argument("--batch-size", type=int, default=32, help="classifier batch at full length; short texts "
                   "are batched more per batch under the same token budget")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="default: batch size x max length")
    p.add_argument("--headline-batch-size", type=int, default=16)
    p.add_argument("--chunk-size", type=int, default=512, help="records per committed chunk (the crash-safe unit)")
    p.add_argument("--top-k", type=int, default=None, help="keep only the k best labels in 'scores'")
    p.add_argument("--threshold", type=float, default=None, help="below it the label is 'other' (default: the model's)")
    p.add_argument("--long-text", default=None, choices=["head", "head_tail", "chunks"],
                   help="override how text beyond the model's max length is handled")
    p.add_argument("--max-length", type=int, default=None,
                   help="tokens per window (default: the model's); measure first with xinwen eval --max-length")
    p.add_argument("--max-record-bytes", type=int, default=1 << 20, help="larger records are rejected as oversize")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command")
    p.add_argument("--overwrite", action="store_true", help="discard an interrupted run's chunks and start over")
    p.add_argument("--keep-parts", action="store_true", help="keep OUTPUT.parts/ after the merge")
    p.add_argument("--no-first-stage", action="store_true",
                   help="ignore a first stage fitted into the classifier folder (`xinwen first-stage`): "
                        "every article goes through the transformer")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--engine", default="local", choices=("local", "ray"),
                   help="local: this machine (or `accelerate launch` processes); ray: a Ray Data actor pool "
                        "(pip install \"xinwen[ray]\"), same output")
    p.add_argument("--ray-address", default=None,
                   help="--engine ray: the cluster to join (default: $RAY_ADDRESS, else a local cluster)")
    p.add_argument("--num-gpus-per-actor", type=float, default=0.0,
                   help="--engine ray: GPUs per actor (0: CPU actors, one per --threads cores)")
    p.set_defaults(func=cmd_score)


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write a faster copy of a classifier: dynamic int8 and/or ONNX",
        description="Write OUT, a copy of the classifier DIR for a faster backend, and measure its quality "
                    "against fp32 (on probe articles, and on --eval-data when given). `xinwen score "
                    "--classifier OUT` then uses that backend.")
    p.add_argument("model_dir")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantization of the linear layers")
    p.add_argument("--onnx", action="store_true", help="ONNX model for ONNX Runtime (with --int8: quantized)")
    p.add_argument("--output", default=None, help="default: MODEL_DIR-int8 / -onnx / -onnx-int8")
    p.add_argument("--eval-data", default=None, help="labelled JSONL/CSV/Parquet to measure agreement and macro-F1")
    p.add_argument("--label-column", default="label")
    p.add_argument("--eval-limit", type=int, default=None, help="use at most this many --eval-data records")
    p.set_defaults(func=cmd_export)


def _columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip())


def fields_from_args(args):
    """The column flags as ``Fields``: '' turns a column off, an explicit name is required."""
    from xinwen.inference.records.readers import Fields

    return Fields.from_column_flags(args.body_column, args.title_column, args.id_column, keep=_columns(args.keep),
                                    max_record_bytes=args.max_record_bytes)


def cmd_score(args) -> int:
    from xinwen.inference.topic.backends import ExportError
    from xinwen.inference.records.readers import InputError
    from xinwen.inference.scoring.job import ScoreOptions, ScoringError, run_score_job

    try:
        fields = fields_from_args(args)
        opts = ScoreOptions(
            input=args.input, output=args.output, classifier=args.classifier, headline=args.headline,
            backend=args.backend, device=args.device, encoding=args.encoding, fields=fields,
            chunk_size=args.chunk_size, batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens,
            headline_batch_size=args.headline_batch_size, top_k=args.top_k, threshold=args.threshold,
            long_text=args.long_text, max_length=args.max_length, resume=args.resume, overwrite=args.overwrite, keep_parts=args.keep_parts,
            threads=args.threads, progress=not args.no_progress, first_stage=not args.no_first_stage)
        if args.engine == "local" and (args.ray_address or args.num_gpus_per_actor):
            raise ScoringError("--ray-address and --num-gpus-per-actor apply to --engine ray; "
                               "fix: add --engine ray, or drop them")
        if args.engine == "ray":
            from xinwen.inference.scoring.ray_engine import RayOptions, run_ray_score_job

            summary = run_ray_score_job(opts, RayOptions(args.ray_address, args.num_gpus_per_actor))
        else:
            summary = run_score_job(opts)
    except (ScoringError, InputError, ExportError, FileNotFoundError) as err:
        logger.error("%s", err)
        return 2
    print(summary.text())  # the CLI summary is the command's answer, not a log line
    return 0


def cmd_export(args) -> int:
    from xinwen.inference.encoders.loading import ModelFolderError
    from xinwen.inference.records.readers import InputError
    from xinwen.inference.topic.backends import ExportError, export_classifier

    suffix = ("-onnx-int8" if args.int8 else "-onnx") if args.onnx else "-int8"
    output = args.output or args.model_dir.rstrip("/") + suffix
    try:
        report = export_classifier(args.model_dir, output, int8=args.int8, onnx=args.onnx,
                                   eval_data=args.eval_data, label_column=args.label_column,
                                   eval_limit=args.eval_limit)
    except (ExportError, ModelFolderError, InputError, FileNotFoundError) as err:
        logger.error("%s", err)
        return 2
    print(f"wrote {report.output} (backend {report.backend}) in {report.seconds:.0f} s")
    print(f"probe articles: max probability change {report.probe_max_prob_diff:.4f}, "
          f"{report.probe_label_changes} label(s) changed")
    if report.eval:
        e = report.eval
        print(f"{e['data']} ({e['articles']} articles): label agreement with fp32 {e['label_agreement']:.2%}; "
              f"macro-F1 fp32 {e['macro_f1_fp32']:.4f} -> {report.backend} {e['macro_f1_export']:.4f}; "
              f"{e['articles_per_s_fp32']:.1f} -> {e['articles_per_s_export']:.1f} articles/s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xinwen-score", description="batch scoring and export")
    parser.add_argument("-v", "--verbose", action="store_true")
    add_score_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``python -m xinwen.inference.scoring.cli`` and ``accelerate launch -m ...``."""
    for key, value in (("TOKENIZERS_PARALLELISM", "false"), ("HF_UPDATE_DOWNLOAD_COUNTS", "0")):
        os.environ.setdefault(key, value)
    args = build_parser().parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s", datefmt="%H:%M:%S")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
