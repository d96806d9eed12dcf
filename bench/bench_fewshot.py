"""Few-shot learning curves: the recipe beside TF-IDF + LR and a frozen-encoder probe, same examples.

    python bench/bench_fewshot.py --work /tmp/fewshot [--sizes 8 16 32 64 128 --draws 3]
    python bench/bench_fewshot.py --work /tmp/fewshot2 --label-set topics2 --sizes 16

For each size n and draw d, n examples per label are drawn (seed d) from the training pool and
five learners get exactly those examples:

* ``tfidf``: character TF-IDF + logistic regression, as `xinwen eval` fits its baseline;
* ``probe``: the recipe with no contrastive step (``fewshot.steps=0``): a logistic
  regression on the frozen encoder's mean-pooled embeddings, C cross-validated the same way;
* ``recipe``: configs/fewshot.yaml without its n-gram expert (``fewshot.ngram_weight=0``);
* ``recipe+desc``: the same with one description per label (``data.label_descriptions``);
* ``recipe+ngram``: configs/fewshot.yaml as shipped: the n-gram expert on the examples, its
  weight cross-validated on them (``fewshot.ngram_weight=null``).

``zero-shot`` (descriptions only, ``data.train`` null) is scored once. Label sets: ``topics`` (ours:
the pool is the builtin training split, scored on the dev split and on the People's Daily
articles) and ``topics2`` (the second label set, bench/data/rmrb1998_topics2_GUIDELINE.md: the
pool is its 400 articles and each draw is scored on the articles it did not draw). Nothing is
tuned on the scored sets. The learners run on the recipe's own code (FewshotLearner); to keep 45
runs affordable on 2 cores the scored articles' frozen bottom layers are computed once and the
trained top layers run on them, which is what the saved folder computes (checked once per run
with `NewsClassifier` on 64 articles). Writes a markdown table and a PNG plot into ``--work``
and bench/out/fewshot_<label set>.json.
"""
from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score

from xinwen.inference.text import as_article
from xinwen.inference.topic.classifier import NewsClassifier
from xinwen.training.config.loading import bundled_configs
from xinwen.training.config.sections import load_config
from xinwen.training.data.builtin import inews_topics
from xinwen.training.topic.encoder_setup import training_windows
from xinwen.training.topic.evaluate import tfidf_baseline
from xinwen.training.data.fewshot import FewshotData, fewshot_data
from xinwen.training.data.topic import draw_per_label
from xinwen.training.topic.fewshot.recipe import FewshotLearner

OUT = Path(__file__).resolve().parent / "out"
logger = logging.getLogger("bench_fewshot")
# One sentence per label in our own words, from each label set's annotation guideline.
DESCRIPTIONS = {
    "topics": {
        "industry_policy": "产业政策新闻：政府和行业部门发布的产业规划、扶持政策、制造业转型升级、园区招商引资、营商环境和官方经济数据。",
        "transport": "交通运输新闻：铁路、高铁、公路、航空、机场、港口航运、物流货运、地铁公交和交通线路开通与建设。",
        "trade": "对外贸易新闻：进出口、海关、关税、外资、自贸区、综合保税区、跨境电商、贸易协定和展会。",
        "safety": "安全新闻：交通事故、火灾、爆炸、坍塌等事故灾害，安全生产检查、隐患排查、应急救援和消防。",
        "other": "其他新闻：娱乐、体育、社会、法治案件、教育、医疗健康、房产广告、股票、生活资讯和地方政务。",
    },
    "topics2": {
        "diplomacy": "外交与国际政治：国家领导人会见、会谈和出访，条约与联合声明，大使和外交部发言人，联合国，两岸关系和港澳台政治，外国的政局、选举、战争与和平谈判。",
        "agriculture": "农业与农村：粮食生产和收购，种植养殖、渔业林业、植树造林，耕地和农田水利，农村改革，农民收入和负担，乡镇企业，农村扶贫。",
        "science_education": "科技与教育：科研项目和成果、发明专利、院士和科技奖励、航天与计算机研究；学校、大学、教师和学生，教育改革、考试、希望工程。",
        "culture_sports": "文化与体育：文学、散文、美术、摄影展、电影电视、戏曲音乐舞蹈和晚会，出版图书和报刊，文物博物馆，节日民俗，各项体育比赛和运动员。",
        "finance": "金融与宏观经济：银行、信贷、保险、股票债券、货币汇率、外汇储备，税收、财政预算，物价，亚洲金融危机和各国经济形势，国内生产总值等宏观统计。",
        "other": "其他新闻：党政工作会议、人事和党建、军队、公安司法和犯罪、工业企业改革、能源交通、建设、贸易、旅游、环境、卫生医疗、灾害救济、社会生活和评论。",
    },
}
ALL_METHODS = ["tfidf", "probe", "recipe", "recipe+desc", "recipe+ngram"]
METHODS = {  # name: config overrides on top of configs/fewshot.yaml
    "probe": ["fewshot.steps=0", "fewshot.ngram_weight=0"],
    "recipe": ["fewshot.ngram_weight=0"],
    "recipe+desc": ["<descriptions>", "fewshot.ngram_weight=0"],
    "recipe+ngram": ["fewshot.ngram_weight=null"],  # as shipped
}


def label_set_data(name: str, newspaper_sample: int) -> tuple[list[str], list[dict], dict[str, list[dict]] | None]:
    """(labels, training pool, fixed scored sets or None when each draw scores its own rest)."""
    from newspaper_1998 import LABEL_SETS, labelled_articles

    labels_file, _, allowed = LABEL_SETS[name]
    if name == "topics":
        newspaper = labelled_articles()
        if newspaper_sample and newspaper_sample < len(newspaper):  # a fixed random sample, same for all
            newspaper = random.Random(0).sample(newspaper, newspaper_sample)
        return list(allowed), inews_topics("train"), {"dev": inews_topics("dev"), "rmrb1998": newspaper}
    return list(allowed), labelled_articles(labels_file=labels_file, allowed=allowed), None


class ScoredSets:
    """Frozen bottom states of the scored articles, computed once, and the gold labels."""

    def __init__(self, sets: dict[str, list[dict]], learner: FewshotLearner, cfg):
        self.gold = {name: [r["label"] for r in recs] for name, recs in sets.items()}
        self.states = {}
        for name, recs in sets.items():
            ids = training_windows(learner.tokenizer, [as_article(r, i) for i, r in enumerate(recs)], cfg.text)
            self.states[name] = learner.cache.precompute(ids, learner.tokenizer.pad_token_id or 0,
                                                         cfg.train.eval_batch_size, name)
        self.records = sets


# Embeddings under the pretrained top layers (probe, zero-shot: no contrastive step), by set name.
FROZEN_EMBEDDINGS: dict[str, np.ndarray] = {}


def predict(learner: FewshotLearner, states: list[torch.Tensor], name: str, frozen: bool,
            records: list[dict] | None = None) -> np.ndarray:
    """Label indices from the learner's head on its embeddings of ``states``, times its n-gram
    expert on ``records`` when it has one (as NewsClassifier combines them)."""
    if frozen and name in FROZEN_EMBEDDINGS:
        features = FROZEN_EMBEDDINGS[name]
    else:
        features = learner.embed(states)
        if frozen:
            FROZEN_EMBEDDINGS[name] = features
    head = learner.model.classifier
    logits = torch.from_numpy(features @ head.weight.detach().numpy().T + head.bias.detach().numpy())
    if learner.lexical is None:
        return logits.argmax(1).numpy()
    ngram = learner.lexical.probabilities([as_article(r, i) for i, r in enumerate(records)], learner.labels)
    return learner.lexical.combine(torch.softmax(logits, 1), ngram).argmax(1).numpy()


def check_folder_agrees(learner: FewshotLearner, scored: ScoredSets, count: int = 64) -> float:
    """Save the learner as the recipe does and compare the folder's `NewsClassifier` answers with
    the cached-state predictions on ``count`` scored articles; returns the agreement."""
    name = next(iter(scored.states))
    learner.finalize(time.time())
    clf = NewsClassifier.from_pretrained(learner.cfg.train.output_dir, device="cpu")
    records = scored.records[name][:count]
    from_folder = [p.label for p in clf.predict([{"title": r["title"], "body": r["body"]} for r in records])]
    cached = predict(learner, scored.states[name][:count], name, False, records)
    agreement = float(np.mean([a == learner.labels[b] for a, b in zip(from_folder, cached)]))
    logger.info("saved folder vs cached-state predictions on %d %s articles: %.3f agree", count, name, agreement)
    return agreement


def run_learner(method: str, labels: list[str], examples: list[dict], seed: int, work: Path, label_set: str):
    # A fresh folder per run, no resume: a checkpoint of an earlier run must never be picked up.
    out = work / "runs" / f"{method}-{len(examples)}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    overrides = [f"train.seed={seed}", f"train.output_dir={out}", "train.resume=false", "data.examples_per_label=0",
                 f"data.labels={json.dumps(labels, ensure_ascii=False)}"]
    extra = list(METHODS.get(method, []))
    described = method in ("recipe+desc", "zero-shot")
    overrides += [o for o in extra if o != "<descriptions>"]
    if described:
        overrides += [f"data.label_descriptions.{k}={v}" for k, v in DESCRIPTIONS[label_set].items()]
    if method == "zero-shot":
        overrides.append("data.train=null")
    cfg = load_config(bundled_configs()["fewshot"], overrides)
    data = fewshot_data(cfg) if method == "zero-shot" else FewshotData(labels, list(examples), [], [])
    data.descriptions = fewshot_data(_without_train(cfg)).descriptions if described else []
    learner = FewshotLearner(cfg, data)
    learner.train()
    learner.fit_head()
    learner.fit_ngram()
    return learner, cfg


def _without_train(cfg):
    """The config with no training file: its descriptions, read the way the recipe reads them."""
    from dataclasses import replace

    return replace(cfg, data=replace(cfg.data, train=None, dev=None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--label-set", default="topics", choices=["topics", "topics2"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--merge", action="store_true",
                        help="add these runs to the label set's saved results (the table shows all of them)")
    parser.add_argument("--methods", nargs="+", default=["tfidf", "probe", "recipe", "recipe+desc", "recipe+ngram"],
                        choices=["tfidf", *METHODS])
    parser.add_argument("--description-sizes", type=int, nargs="*", default=[16],
                        help="sizes at which recipe+desc runs (each run costs as much as the recipe)")
    parser.add_argument("--newspaper-sample", type=int, default=1000,
                        help="score a fixed random sample of this many People's Daily articles (0 = all 2,959)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("xinwen.training.loop", "xinwen.training.encoder_cache", "xinwen.training.topic.encoder_setup"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    OUT.mkdir(parents=True, exist_ok=True)
    labels, pool, fixed_sets = label_set_data(args.label_set, args.newspaper_sample)
    saved = OUT / f"fewshot_{args.label_set}.json"
    results: dict = json.loads(saved.read_text()) if args.merge and saved.is_file() else {}
    zero_learner, zero_cfg = run_learner("zero-shot", labels, [], 0, work, args.label_set)
    scored_cache: dict = {}

    def scored_sets(drawn_ids: set) -> ScoredSets:
        sets = fixed_sets or {"rest": [r for r in pool if r["id"] not in drawn_ids]}
        key = tuple(sorted(drawn_ids)) if fixed_sets is None else "fixed"
        if key not in scored_cache:
            scored_cache.clear()
            scored_cache[key] = ScoredSets(sets, zero_learner, zero_cfg)
        return scored_cache[key]

    def score(scored: ScoredSets, name: str, predicted) -> float:
        return float(f1_score(scored.gold[name], predicted, labels=labels, average="macro", zero_division=0))

    if fixed_sets is not None:
        scored = scored_sets(set())
        results["zero-shot"] = {name: score(scored, name, [labels[i] for i in predict(zero_learner, st, name, True)])
                                for name, st in scored.states.items()}
        logger.info("zero-shot: %s", results["zero-shot"])
    for size in args.sizes:
        for draw in range(args.draws):
            examples = draw_per_label(pool, size, seed=draw)
            scored = scored_sets({r["id"] for r in examples})
            if fixed_sets is None and draw == 0 and size == args.sizes[0]:
                results["zero-shot"] = {"rest": score(scored, "rest", [labels[i] for i in predict(
                    zero_learner, scored.states["rest"], "rest", False)])}
            for method in args.methods:
                if method == "recipe+desc" and size not in args.description_sizes:
                    continue
                t0 = time.time()
                if method == "tfidf":
                    predictor = tfidf_baseline(examples, labels)
                    row = {name: score(scored, name, predictor(scored.records[name])) for name in scored.states}
                else:
                    learner, _ = run_learner(method, labels, examples, draw, work, args.label_set)
                    frozen = method == "probe" and fixed_sets is not None
                    row = {name: score(scored, name, [labels[i] for i in predict(
                        learner, st, name, frozen, scored.records[name])]) for name, st in scored.states.items()}
                row["seconds"] = round(time.time() - t0, 1)
                if method == "recipe+ngram":
                    row["ngram_weight"] = learner.lexical.settings.weight if learner.lexical else 0.0
                if method.startswith("recipe") and f"folder_agreement {method}" not in results:
                    results[f"folder_agreement {method}"] = check_folder_agrees(learner, scored)
                if method != "tfidf":
                    shutil.rmtree(learner.cfg.train.output_dir, ignore_errors=True)  # ~1 GB of weights each
                results.setdefault(f"{method}@{size}", []).append(row)
                logger.info("n=%d draw %d %s: %s", size, draw, method, row)
                saved.write_text(json.dumps(results, indent=2))
    write_table(results, args, work)


def write_table(results: dict, args, work: Path) -> None:
    sets = [k for k in results["zero-shot"]]
    lines = ["| examples per label | method | " + " | ".join(sets) + " | seconds |",
             "|---:|---|" + "---:|" * (len(sets) + 1)]
    sizes = sorted({int(key.split("@")[1]) for key in results if "@" in key})
    for size in sizes:
        for method in ALL_METHODS:
            rows = results.get(f"{method}@{size}", [])
            if rows:
                cells = [f"{np.mean([r[s] for r in rows]):.3f} ± {np.std([r[s] for r in rows]):.3f}" for s in sets]
                lines.append(f"| {size} | {method} | " + " | ".join(cells) + f" | {np.mean([r['seconds'] for r in rows]):.0f} |")
    lines.append("| - | zero-shot (descriptions only) | " + " | ".join(f"{results['zero-shot'][s]:.3f}" for s in sets) + " | |")
    table = "\n".join(lines)
    print(table)  # the bench's answer
    (work / "table.md").write_text(table + "\n")
    plot(results, args, sets, work / f"fewshot_{args.label_set}.png")


def plot(results: dict, args, sets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(5 * len(sets), 4), squeeze=False)
    for ax, name in zip(axes[0], sets):
        for method in ALL_METHODS:
            sizes = sorted(int(key.split("@")[1]) for key in results if key.split("@")[0] == method)
            if not sizes:
                continue
            means = [np.mean([r[name] for r in results[f"{method}@{s}"]]) for s in sizes]
            ax.plot(sizes, means, marker="o", label=method)
        ax.axhline(results["zero-shot"][name], linestyle="--", color="grey", label="zero-shot")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("examples per label")
        ax.set_ylabel("macro-F1")
        ax.set_title(f"{args.label_set}: {name}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    logger.info("plot: %s", path)


if __name__ == "__main__":
    main()
