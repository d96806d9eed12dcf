"""The lead fallback applied afterwards to headlines already chosen by reranking.

    python bench/headline_fallback_rescore.py bench/out/headline_echo.predictions1.jsonl ...

For prediction files written by ``bench_headline_rerank.py`` before the fallback existed: the
reranked headline is the first candidate, so ``with_lead_fallback`` on it alone gives what
``generate()`` answers now (the fallback only looks at whether the first candidate is faithful).
Prints character ROUGE and the editor's checks for lead, reranked and reranked + fallback.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from xinwen.inference.headline.candidates import checked_candidate, with_lead_fallback
from xinwen.inference.headline.quality import quality_rates
from xinwen.training.headline.evaluate import load_char_rouge, paired_bootstrap

LEAD_CHARS = 22  # the README model's xinwen.json lead_chars


def rescore(path: str, rouge) -> dict:
    rows = [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]
    sources, references = [r["source"] for r in rows], [r["reference"] for r in rows]
    chosen = [r.get("reranked", r["model"]) for r in rows]
    systems = {"lead": [r["lead"] for r in rows], "reranked": chosen,
               "reranked + lead fallback": [with_lead_fallback([checked_candidate(c, 0.0, s)], s, 0, LEAD_CHARS)[0].text
                                            for c, s in zip(chosen, sources)]}
    per = {k: np.array(rouge.compute(predictions=v, references=references, use_aggregator=False)["rougeL"])
           for k, v in systems.items()}
    out = {"file": path, "items": len(rows), "systems": {}}
    for name, headlines in systems.items():
        delta = per[name] - per["lead"]
        out["systems"][name] = {"rougeL": float(per[name].mean()), "rougeL_minus_lead": float(delta.mean()),
                                "rougeL_minus_lead_95ci": paired_bootstrap(delta),
                                "quality": quality_rates(headlines, sources)}
    return out


if __name__ == "__main__":
    rouge = load_char_rouge()
    for path in sys.argv[1:]:
        print(json.dumps(rescore(path, rouge), ensure_ascii=False))
