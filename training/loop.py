"""The one training contract both tasks share.

A task supplies only what is its own - its model and parameter groups, a length-bucketing batch
sampler over its items, a collate function, its loss and its dev evaluation - as a ``Task`` built
by a setup function. ``run_training`` owns everything else: seeding before the task builds any new
module, frozen modules in eval mode for the whole run, accelerate, checkpoints, exact resume,
early stopping and logging (terminal bar, log lines, trackers, the history in metrics.json).

Layout under ``output_dir``::

    checkpoints/step-000200/   accelerate state (model, optimizer, scheduler, RNG) + loop_state.json
    checkpoints/best/          weights of the best dev score so far (safetensors)
    logs/                      tracker files when train.report_to is csv or tensorboard
    (final model)              written by the task's finalize step, never mixed with the above

Resume is exact: a run killed at any point and started again ends with the same bytes as an
uninterrupted run (tests/test_training_resume.py). That rests on three rules kept here: every
epoch's batches are a pure function of (seed, epoch); nothing outside the checkpointed RNG state
draws random numbers differently in a resumed run; and ``loop_state.json`` is written last, so a
checkpoint without it is incomplete and ignored.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from xinwen.training.config.sections import TrainSection
from xinwen.training.tracking import make_trackers, tracker_config

logger = logging.getLogger(__name__)

# Optimizer steps between two training-loss/learning-rate records (log line, trackers, history).
LOG_EVERY_STEPS = 10


@dataclass
class LoopState:
    """Everything the loop needs to continue a run; saved as loop_state.json in each checkpoint."""

    epoch: int = 0
    step_in_epoch: int = 0  # optimizer steps finished inside `epoch`
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    # Early stopping or train.max_steps ended the run: a resumed finished run must not train on.
    stopped: bool = False
    history: list = field(default_factory=list)  # one entry per epoch: dev metrics, mean loss, lr
    training_log: list = field(default_factory=list)  # one entry per LOG_EVERY_STEPS: loss, lr
    # Training loss summed since the last record (kept so a resumed run logs the same means).
    loss_sum: float = 0.0
    loss_steps: int = 0
    epoch_loss_sum: float = 0.0
    epoch_loss_steps: int = 0


def length_bucketed_batches(order: list[int], lengths, batch_size: int, window: int,
                            rng: random.Random) -> list[list[int]]:
    """Batches of similar-length items (little padding) that are still shuffled: sort inside
    windows of ``window`` items of ``order``, cut into batches, shuffle the batches."""
    batches = []
    for s in range(0, len(order), window):
        block = sorted(order[s : s + window], key=lambda i: lengths[i])
        batches += [block[k : k + batch_size] for k in range(0, len(block), batch_size)]
    rng.shuffle(batches)
    return batches


class LengthBucketSampler(Sampler):
    """The batch sampler of both tasks: shuffled batches of similar-length items, a pure function
    of (seed, epoch), so a resumed run replays exactly the batches an uninterrupted one saw.

    ``select(epoch)`` returns the epoch's items in order and the ``random.Random`` that shuffles
    the batches (topic: all topic items plus a fresh sample of the fallback class); without it
    every item is used, shuffled by ``Random(seed * 1000 + epoch)``, which then shuffles the
    batches too. ``set_epoch`` picks the epoch (accelerate calls it as well)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, window: int, seed: int,
                 select: Callable[[int], tuple[list[int], random.Random]] | None = None):
        self.lengths, self.batch_size, self.window, self.seed = list(lengths), batch_size, window, seed
        self.select = select or self._all_items_shuffled
        self.epoch = -1
        self.set_epoch(0)

    @property
    def item_count(self) -> int:
        return len(self.lengths)

    def _all_items_shuffled(self, epoch: int) -> tuple[list[int], random.Random]:
        rng = random.Random(self.seed * 1000 + epoch)
        order = list(range(len(self.lengths)))
        rng.shuffle(order)
        return order, rng

    def batches(self, epoch: int) -> list[list[int]]:
        order, rng = self.select(epoch)
        return length_bucketed_batches(order, self.lengths, self.batch_size, self.window, rng)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._batches = epoch, self.batches(epoch)

    def __iter__(self):
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


@dataclass
class Task:
    """What one task hands the loop. Built by the task's setup after the loop has seeded."""

    model: torch.nn.Module
    param_groups: list[dict]
    sampler: LengthBucketSampler
    collate: Callable[[list[int]], dict]
    # (model, batch) -> scalar loss, called in train mode (frozen modules in eval mode).
    compute_loss: Callable[[torch.nn.Module, dict], torch.Tensor]
    # model -> {"score": higher is better, ...}; called in eval mode; the loop restores the modes.
    evaluate: Callable[[torch.nn.Module], dict]


@dataclass
class TrainingRun:
    """What ``run_training`` hands back to the task's finalize step."""

    task: Task
    state: LoopState
    accelerator: Accelerator
    best_dir: Path  # weights of the best epoch (save_pretrained layout)


# Set to True on a module (a dropout inside a frozen part) that trains with dropout all the same,
# where the dropout is a deliberate regulariser rather than a side effect of the checkpoint.
KEEPS_TRAIN_MODE = "xinwen_keeps_train_mode"


def frozen_modules_eval(model: torch.nn.Module) -> None:
    """Put every module whose parameters are all frozen in eval mode (no dropout in frozen parts)."""
    for module in model.modules():
        params = list(module.parameters(recurse=True))
        if params and not any(p.requires_grad for p in params):
            module.eval()


def training_mode(model: torch.nn.Module) -> None:
    """Train mode for what trains, eval mode for frozen parts: they are feature extractors, except
    for modules marked with ``KEEPS_TRAIN_MODE``."""
    model.train()
    frozen_modules_eval(model)
    for module in model.modules():
        if getattr(module, KEEPS_TRAIN_MODE, False):
            module.train()


def pick_mixed_precision(requested: str) -> str:
    if requested != "auto":
        return requested
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"  # bf16 autocast is ~3x slower than fp32 on the CPUs we measured


def make_accelerator(cfg: TrainSection) -> Accelerator:
    logs = Path(cfg.output_dir) / "logs"
    return Accelerator(
        mixed_precision=pick_mixed_precision(cfg.mixed_precision),
        gradient_accumulation_steps=cfg.grad_accum,
        log_with=make_trackers(cfg.report_to, logs),
        project_dir=str(logs),
    )


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (loop_state.json is written last) or None."""
    steps = sorted(p for p in folder.glob("step-*") if (p / "loop_state.json").is_file())
    return steps[-1] if steps else None


def run_training(cfg: TrainSection, setup: Callable[[Accelerator, bool], Task],
                 run_name: str = "xinwen") -> TrainingRun:
    """Seed, let ``setup(accelerator, resuming)`` build the task, train it with early stopping on
    its dev score (resuming from the newest checkpoint when train.resume), keep the best weights.

    ``resuming`` tells the setup that a checkpoint will replace the weights it builds (so work
    that only shapes the starting weights, like a linear-probe head, can be skipped)."""
    accelerator = make_accelerator(cfg)
    ckpt_dir = Path(cfg.output_dir) / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    latest = latest_checkpoint(ckpt_dir) if cfg.resume else None
    set_seed(cfg.seed)  # before the task builds its new modules: same seed, same start
    task = setup(accelerator, latest is not None)
    # Again, so the trajectory does not depend on how many numbers the setup happened to draw.
    set_seed(cfg.seed)
    loop = TrainingLoop(cfg, accelerator, task, ckpt_dir)
    if latest is not None:
        loop.resume_from(latest)
    accelerator.init_trackers(run_name, config=tracker_config(cfg))
    try:
        loop.run()
    finally:
        accelerator.end_training()
    return TrainingRun(task, loop.state, accelerator, ckpt_dir / "best")


class TrainingLoop:
    """One run's optimizer, scheduler and state; ``run`` trains epoch after epoch."""

    def __init__(self, cfg: TrainSection, accelerator: Accelerator, task: Task, ckpt_dir: Path):
        self.cfg, self.accelerator, self.task, self.ckpt_dir = cfg, accelerator, task, ckpt_dir
        optimizer = torch.optim.AdamW(task.param_groups, weight_decay=cfg.weight_decay)
        total = self._total_optimizer_steps(len(task.sampler))
        scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
        self.model, self.optimizer, self.scheduler = accelerator.prepare(task.model, optimizer, scheduler)
        self.state = LoopState()

    def _total_optimizer_steps(self, batches_per_epoch: int) -> int:
        per_epoch = max(1, math.ceil(batches_per_epoch / self.cfg.grad_accum))
        total = per_epoch * self.cfg.epochs
        return min(total, self.cfg.max_steps) if self.cfg.max_steps else total

    def resume_from(self, checkpoint: Path) -> None:
        self.accelerator.load_state(str(checkpoint))
        self.state = LoopState(**json.loads((checkpoint / "loop_state.json").read_text()))
        logger.info("resumed from %s (epoch %d, step %d)", checkpoint, self.state.epoch, self.state.global_step)

    def run(self) -> None:
        state = self.state
        while state.epoch < self.cfg.epochs and not state.stopped:
            training_mode(self.model)
            self._train_one_epoch()
            self._evaluate_epoch()
            state.epoch += 1
            state.step_in_epoch = 0
            self.save_checkpoint()
        self.accelerator.wait_for_everyone()

    def _epoch_loader(self):
        """The epoch's prepared loader, past the batches a resumed run already trained on."""
        epoch, skip = self.state.epoch, self.state.step_in_epoch * self.cfg.grad_accum
        sampler = self.task.sampler
        sampler.set_epoch(epoch)
        # The DataLoader draws a seed when iterated (unused without workers); a private generator
        # keeps that draw off torch's global RNG, so a resumed epoch sees the same global state.
        generator = torch.Generator().manual_seed(sampler.seed * 1000 + epoch)
        loader = DataLoader(range(sampler.item_count), batch_sampler=sampler, collate_fn=self.task.collate,
                            generator=generator)
        loader = self.accelerator.prepare(loader)
        loader.set_epoch(epoch)  # accelerate re-applies its own epoch counter to the sampler
        total = len(loader)
        return (self.accelerator.skip_first_batches(loader, skip) if skip else loader), skip, total

    def _train_one_epoch(self) -> None:
        cfg, accelerator, state = self.cfg, self.accelerator, self.state
        batches, done, total = self._epoch_loader()
        # The bar goes to a terminal only (disable=None): a log file gets the log lines instead.
        bar = tqdm(batches, total=total, initial=done, desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
                   disable=None if accelerator.is_local_main_process else True, dynamic_ncols=True)
        for batch in bar:
            loss = self._train_step(batch)
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            state.step_in_epoch += 1
            self._record_loss(loss.item(), bar)
            if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                self.save_checkpoint()
            if cfg.max_steps and state.global_step >= cfg.max_steps:
                state.stopped = True
                break
        bar.close()

    def _train_step(self, batch: dict) -> torch.Tensor:
        accelerator = self.accelerator
        with accelerator.accumulate(self.model):
            loss = self.task.compute_loss(self.model, batch)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        return loss

    def _learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def _record_loss(self, loss: float, bar) -> None:
        """Add one optimizer step's loss; every LOG_EVERY_STEPS steps record mean loss and lr."""
        state = self.state
        state.loss_sum += loss
        state.loss_steps += 1
        state.epoch_loss_sum += loss
        state.epoch_loss_steps += 1
        if state.global_step % LOG_EVERY_STEPS:
            return
        entry = {"step": state.global_step, "epoch": state.epoch + 1,
                 "train_loss": state.loss_sum / state.loss_steps, "lr": self._learning_rate()}
        state.training_log.append(entry)
        state.loss_sum, state.loss_steps = 0.0, 0
        bar.set_postfix(loss=f"{entry['train_loss']:.4f}", lr=f"{entry['lr']:.2e}")
        logger.info("step %d: training loss %.4f, lr %.2e", entry["step"], entry["train_loss"], entry["lr"])
        self.accelerator.log({"train/loss": entry["train_loss"], "train/lr": entry["lr"]}, step=state.global_step)

    def _evaluate_epoch(self) -> None:
        """Dev score of the epoch's weights; keep them when best; decide on early stopping."""
        state, accelerator = self.state, self.accelerator
        model = accelerator.unwrap_model(self.model)
        model.eval()
        metrics = self.task.evaluate(model)
        training_mode(self.model)  # whatever the evaluation did to the modes
        score = float(metrics["score"])
        mean_loss = state.epoch_loss_sum / state.epoch_loss_steps if state.epoch_loss_steps else None
        state.epoch_loss_sum, state.epoch_loss_steps = 0.0, 0
        state.history.append({"epoch": state.epoch + 1, "step": state.global_step, **metrics,
                              "train_loss": mean_loss, "lr": self._learning_rate()})
        logger.info("epoch %d: dev %s", state.epoch + 1,
                    {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)})
        accelerator.log({f"dev/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                        step=state.global_step)
        if score > state.best_score:
            state.best_score, state.best_epoch = score, state.epoch + 1
            state.epochs_without_improvement = 0
            if accelerator.is_main_process:
                model.save_pretrained(self.ckpt_dir / "best", safe_serialization=True)
        else:
            state.epochs_without_improvement += 1
            if state.epochs_without_improvement >= self.cfg.early_stopping_patience:
                logger.info("early stopping: no dev improvement for %d epoch(s)", state.epochs_without_improvement)
                state.stopped = True

    def save_checkpoint(self) -> None:
        """Save resumable state; loop_state.json last and atomically, as the mark of a whole
        checkpoint. Keeps the newest max(1, train.keep_checkpoints) while training."""
        target = self.ckpt_dir / f"step-{self.state.global_step:07d}"
        self.accelerator.save_state(str(target))
        if not self.accelerator.is_main_process:
            return
        partial = target / "loop_state.json.partial"
        partial.write_text(json.dumps(asdict(self.state), indent=2))
        os.replace(partial, target / "loop_state.json")
        for old in sorted(self.ckpt_dir.glob("step-*"))[: -max(1, self.cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
