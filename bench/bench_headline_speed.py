"""HeadlineGenerator's batched path vs one model.generate call per article, side by side.

    python bench/bench_headline_speed.py runs/headline --items 64 --threads 2

Both paths use the same model, the same prepared inputs and the same generation settings. The
batched path sorts articles by length and pads per batch; the baseline calls
``model.generate`` on one article at a time. Prints wall and CPU seconds, articles/s, the
speed-up, and how many headlines are identical (they must all be at beam 1).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch


def cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed(fn):
    w, c = time.time(), cpu_seconds()
    out = fn()
    return out, time.time() - w, cpu_seconds() - c


def one_at_a_time(gen, encoded, **settings) -> list[list[int]]:
    out = []
    with torch.inference_mode():
        for ids in encoded:
            x = torch.tensor([ids], device=gen.device)
            seq = gen.model.generate(input_ids=x, attention_mask=torch.ones_like(x), **settings)
            out.append(seq[0].tolist())
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir")
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    p.add_argument("--output", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from xinwen.inference.headline.generator import HeadlineGenerator, generation_settings
    from xinwen.training.config.sections import HeadlineDataSection
    from xinwen.training.data.headline import build_pairs, filters_from, read_records

    data = HeadlineDataSection()
    pairs = build_pairs(read_records("builtin:inews-headlines:test", data), filters_from(data), "test")[: args.items]
    gen = HeadlineGenerator.from_pretrained(args.model_dir, device="cpu")
    sources = [p["source"] for p in pairs]
    encoded = gen.encode(sources)
    results = {"model_dir": args.model_dir, "items": len(pairs), "threads": args.threads,
               "batch_size": args.batch_size, "runs": []}
    for beams in args.beams:
        settings = {"num_beams": beams}
        # Warm-up (first-call allocations) outside the timings.
        gen.generate_ids(encoded[:2], batch_size=2, **settings)
        batched, bw, bc = timed(lambda: gen.generate_ids(encoded, batch_size=args.batch_size, **settings))
        config = generation_settings(gen.model.generation_config, settings)
        single, sw, sc = timed(lambda: one_at_a_time(gen, encoded, generation_config=config))
        texts_b = [gen.decode(i, s) for i, s in zip(batched, sources)]
        texts_s = [gen.decode(i, s) for i, s in zip(single, sources)]
        same = sum(a == b for a, b in zip(texts_b, texts_s))
        run = {"num_beams": beams, "batched_wall_s": round(bw, 2), "batched_cpu_s": round(bc, 2),
               "single_wall_s": round(sw, 2), "single_cpu_s": round(sc, 2),
               "batched_articles_per_s": round(len(pairs) / bw, 2), "single_articles_per_s": round(len(pairs) / sw, 2),
               "speedup_wall": round(sw / bw, 2), "speedup_cpu": round(sc / max(bc, 1e-9), 2),
               "identical": same}
        results["runs"].append(run)
        print(f"beams={beams}: batched {bw:.1f}s wall / {bc:.1f}s CPU ({run['batched_articles_per_s']} art/s), "
              f"one-by-one {sw:.1f}s wall / {sc:.1f}s CPU ({run['single_articles_per_s']} art/s); "
              f"speed-up x{run['speedup_wall']} wall, x{run['speedup_cpu']} CPU; identical {same}/{len(pairs)}")
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
