"""The one training loop both tasks share: accelerate, early stopping, resumable checkpoints.

Layout under ``output_dir``::

    checkpoints/step-000200/   accelerate state (model, optimizer, scheduler, RNG) + loop_state.json
    checkpoints/best/          weights of the best dev score so far (safetensors)
    (final model)              written by the task with save_pretrained, never mixed with the above
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from xinwen.training.config.sections import TrainSection

logger = logging.getLogger(__name__)


@dataclass
class LoopState:
    epoch: int = 0
    step_in_epoch: int = 0  # optimizer steps finished inside `epoch`
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    history: list | None = None


def length_bucketed_batches(order: list[int], lengths, batch_size: int, window: int,
                            rng) -> list[list[int]]:
    """Batches of similar-length items (little padding) that are still shuffled: sort inside
    windows of ``window`` items of ``order``, cut into batches, shuffle the batches."""
    batches = []
    for s in range(0, len(order), window):
        block = sorted(order[s : s + window], key=lambda i: lengths[i])
        batches += [block[k : k + batch_size] for k in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


def frozen_modules_eval(model: torch.nn.Module) -> None:
    """Put every module whose parameters are all frozen in eval mode (no dropout in frozen parts)."""
    for module in model.modules():
        params = list(module.parameters(recurse=True))
        if params and not any(p.requires_grad for p in params):
            module.eval()


def pick_mixed_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"  # bf16 autocast is ~3x slower than fp32 on the CPUs we measured


def make_accelerator(cfg: TrainSection) -> Accelerator:
    return Accelerator(
        mixed_precision=pick_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum,
    )


def latest_checkpoint(folder: Path) -> Path | None:
    steps = sorted(p for p in folder.glob("step-*") if (p / "loop_state.json").is_file())
    return steps[-1] if steps else None


def train_loop(
    cfg: TrainSection,
    accelerator: Accelerator,
    model: torch.nn.Module,
    param_groups: list[dict],
    epoch_loader: Callable[[int], DataLoader],
    compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], dict],
    steps_per_epoch: int,
) -> LoopState:
    """Train with early stopping on ``evaluate(model)["score"]`` (higher is better).

    ``epoch_loader(epoch)`` must be deterministic in ``epoch`` so that a resumed run sees the
    same batches as an uninterrupted one. Returns the final loop state; the best weights are in
    ``output_dir/checkpoints/best``.
    """
    out = Path(cfg.output_dir)
    ckpt_dir = out / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    set_seed(cfg.seed)

    optimizer = torch.optim.AdamW(param_groups, weight_decay=cfg.weight_decay)
    optim_steps_per_epoch = max(1, math.ceil(steps_per_epoch / cfg.grad_accum))
    total = optim_steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = LoopState(history=[])
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    if latest is not None:
        accelerator.load_state(str(latest))
        state = LoopState(**json.loads((latest / "loop_state.json").read_text()))
        logger.info("resumed from %s (epoch %d, step %d)", latest, state.epoch, state.global_step)

    def save_checkpoint() -> None:
        target = ckpt_dir / f"step-{state.global_step:07d}"
        accelerator.save_state(str(target))
        if accelerator.is_main_process:
            (target / "loop_state.json").write_text(json.dumps(asdict(state), indent=2))
            for old in sorted(ckpt_dir.glob("step-*"))[: -cfg.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)

    stop = False
    while state.epoch < cfg.epochs and not stop:
        model.train()
        frozen_modules_eval(model)  # frozen parts are feature extractors: no dropout, all run long
        loader = accelerator.prepare(epoch_loader(state.epoch))
        skip = state.step_in_epoch * cfg.grad_accum
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        bar = tqdm(batches, total=len(loader), initial=skip, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
                   disable=not accelerator.is_local_main_process, dynamic_ncols=True)
        running = None
        for batch in bar:
            with accelerator.accumulate(model):
                loss = compute_loss(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                state.global_step += 1
                state.step_in_epoch += 1
                running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
                bar.set_postfix(loss=f"{running:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
                if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                    save_checkpoint()
                if cfg.max_steps and state.global_step >= cfg.max_steps:
                    stop = True
                    break
        bar.close()

        metrics = evaluate(accelerator.unwrap_model(model))
        score = float(metrics["score"])
        state.history.append({"epoch": state.epoch + 1, "step": state.global_step, **metrics})
        logger.info("epoch %d: dev %s", state.epoch + 1,
                    {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
        if score > state.best_score:
            state.best_score, state.best_epoch = score, state.epoch + 1
            state.epochs_without_improvement = 0
            if accelerator.is_main_process:
                accelerator.unwrap_model(model).save_pretrained(ckpt_dir / "best", safe_serialization=True)
        else:
            state.epochs_without_improvement += 1
            if state.epochs_without_improvement >= cfg.early_stopping_patience:
                logger.info("early stopping: no dev improvement for %d epoch(s)",
                            state.epochs_without_improvement)
                stop = True
        state.epoch += 1
        state.step_in_epoch = 0
        save_checkpoint()
    accelerator.wait_for_everyone()
    return state
