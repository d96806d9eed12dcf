"""Do label descriptions add anything? A zero-shot prior from the frozen e5, measured.

    python bench/bench_label_prior.py runs/topic [more model folders]

The frozen (not fine-tuned) builtin e5 embeds each article (``query: `` + title + body, first
256 tokens, mean-pooled, L2-normalised) and one short Chinese description per label written from
data/inews_topics/GUIDELINE.md; the zero-shot probabilities are softmax(cosine / 0.05). They are
scored alone and as a third expert in the classifier's product,
``log p_encoder + w_lexical log p_ngram + w_prior log p_zero_shot``, for a few ``w_prior``, on the
dev split and both formal check sets. Evaluation only: the default model does not use it (it
would need a second, full 12-layer encoder pass per article).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch
from check_sets import formal_check_sets
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from xinwen.inference import NewsClassifier
from xinwen.inference.encoders.loading import check_model_source
from xinwen.inference.text import as_article, classifier_text
from xinwen.training.config.sections import load_config
from xinwen.training.data.topic import load_topic_splits

OUT = Path(__file__).resolve().parent / "out" / "label_prior.json"
# One sentence per label, paraphrasing the annotation guideline's definitions (our own wording).
DESCRIPTIONS = {
    "industry_policy": "产业政策新闻：政府和行业部门发布的产业规划、扶持政策、制造业转型升级、园区招商引资、营商环境和官方经济数据。",
    "transport": "交通运输新闻：铁路、高铁、公路、航空、机场、港口航运、物流货运、地铁公交和交通线路开通与建设。",
    "trade": "对外贸易新闻：进出口、海关、关税、外资、自贸区、综合保税区、跨境电商、贸易协定和展会。",
    "safety": "安全新闻：交通事故、火灾、爆炸、坍塌等事故灾害，安全生产检查、隐患排查、应急救援和消防。",
    "other": "其他新闻：娱乐、体育、社会、法治案件、教育、医疗健康、房产广告、股票、生活资讯和地方政务。",
}
TEMPERATURE = 0.05


@torch.inference_mode()
def embed(model, tokenizer, texts: list[str], batch_size: int = 16, max_length: int = 256) -> torch.Tensor:
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.zeros((len(texts), model.config.hidden_size))
    for start in tqdm(range(0, len(order), batch_size), desc="frozen e5", unit="batch"):
        rows = order[start:start + batch_size]
        batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        out[rows] = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return out


def main() -> None:
    from transformers import AutoModel, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dirs", nargs="+")
    parser.add_argument("--prior-weights", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    source = check_model_source("builtin:multilingual-e5-small")
    e5, tokenizer = AutoModel.from_pretrained(source).eval(), AutoTokenizer.from_pretrained(source)
    formal = formal_check_sets()
    zero_shot: dict[str, torch.Tensor] = {}  # per check set; the same for every model folder
    rows, raw = [], {}
    for model_dir in args.model_dirs:
        dev = load_topic_splits(load_config(Path(model_dir, "config.yaml")))[1]
        clf = NewsClassifier.from_pretrained(model_dir, device="cpu", first_stage=False)
        labels = clf.labels
        label_vectors = embed(e5, tokenizer, ["query: " + DESCRIPTIONS[label] for label in labels])
        for name, records in {"dev": dev, **formal}.items():
            articles = [as_article(r, i) for i, r in enumerate(records)]
            if name not in zero_shot:
                vectors = embed(e5, tokenizer, [classifier_text(a, "query: ") for a in articles])
                zero_shot[name] = torch.softmax(vectors @ label_vectors.T / TEMPERATURE, dim=-1)
            prior = zero_shot[name]
            product = clf.probabilities(articles)  # encoder x lexical expert, as saved
            gold = [r["label"] for r in records]

            def f1(probs: torch.Tensor) -> float:
                pred = [labels[i] for i in probs.argmax(1).tolist()]
                return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0))

            scores = {"zero-shot alone": f1(prior), "model": f1(product)}
            for weight in args.prior_weights:
                scores[f"model + prior^{weight:g}"] = f1(product.clamp_min(1e-9).log()
                                                          + weight * prior.clamp_min(1e-9).log())
            raw[f"{model_dir}|{name}"] = scores
            rows.append(f"| {model_dir} | {name} ({len(records)}) | " + " | ".join(f"{v:.3f}" for v in scores.values()) + " |")
            logging.info("%s %s: %s", model_dir, name, {k: round(v, 3) for k, v in scores.items()})
    columns = list(next(iter(raw.values())))
    table = "| model | set | " + " | ".join(columns) + " |\n|---|---|" + "---|" * len(columns) + "\n" + "\n".join(rows)
    print(table)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"table": table, "macro_f1": raw, "descriptions": DESCRIPTIONS,
                               "temperature": TEMPERATURE}, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
