"""The Lightning adapter: one ``LightningModule`` that trains any :class:`~dgm.core.GenerativeModel`."""
from __future__ import annotations

import math
from collections.abc import Callable

import lightning.pytorch as L
import torch
from torch import Tensor


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run folder keeps the checkpoint of the last completed epoch, if any."""


class TrainingModule(L.LightningModule):
    """Optimises ``model.loss`` (or alternates critic and generator losses for adversarial models) with Adam.

    ``lr_schedule`` is ``"constant"`` or ``"cosine"`` (a half cosine down to zero over the batches of the run).
    Training batches arrive as example indices (:class:`~dgm.training.data.ShuffledBatches`) and ``train_batch``
    turns them into data inside the step, so that any randomness it draws follows the checkpointed generator.
    It must be a plain function (``fit`` passes a lambda): the EMA callback deep-copies this module, and
    ``copy.deepcopy`` shares functions but would copy a callable object, and with it a whole training set.
    ``train_labels`` (a plain function too) gives the class labels of the indices for a class-conditional model
    (``model.n_classes``), which then receives ``labels=`` in ``loss``; test batches then arrive as
    ``(x, labels)`` pairs.
    """

    def __init__(self, model, train_batch: Callable[[Tensor], Tensor], lr: float, lr_schedule: str = "constant",
                 grad_clip: float | None = None, train_labels: Callable[[Tensor], Tensor] | None = None):
        super().__init__()
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.model = model
        self.lr, self.lr_schedule, self.grad_clip = lr, lr_schedule, grad_clip
        self.train_batch, self.train_labels = train_batch, train_labels
        self.automatic_optimization = not model.adversarial
        self.batches_trained = 0  # drives the order of training batches (dgm.training.data.ShuffledBatches)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["batches_trained"] = self.batches_trained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.batches_trained = checkpoint["batches_trained"]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.batches_trained += 1

    # -- steps --------------------------------------------------------------------------------------------------
    def training_step(self, indices: Tensor, batch_idx: int):
        x = self.train_batch(indices).to(self.device)
        if self.model.adversarial:
            return self._adversarial_step(x)
        condition = {} if self.train_labels is None else {"labels": self.train_labels(indices).to(self.device)}
        losses = self.model.loss(x, **condition)
        self._log("train", losses, len(x))
        return self._finite(losses["loss"])

    def _adversarial_step(self, x: Tensor) -> None:
        """One critic update per batch, one generator update after every ``critic_steps`` critic updates (counted
        over the whole run, so resuming keeps the rhythm); learning-rate schedules step once per batch."""
        generator_optimizer, critic_optimizer = self.optimizers()
        self._manual_update(critic_optimizer, self.model.critic_loss(x), "critic", len(x))
        if (self.batches_trained + 1) % self.model.critic_steps == 0:
            self._manual_update(generator_optimizer, self.model.generator_loss(x), "generator", len(x))
        for scheduler in self.lr_schedulers() or []:
            scheduler.step()

    def _manual_update(self, optimizer, losses: dict[str, Tensor], role: str, batch_size: int) -> None:
        optimizer.zero_grad()
        self.manual_backward(self._finite(losses["loss"]))
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()
        self._log(f"train/{role}", losses, batch_size)

    def validation_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        if isinstance(batch, tuple):
            x, labels = batch
            self._log("test", self.model.loss(x, labels=labels), len(x))
            return
        x = batch
        if self.model.adversarial:
            self._log("test/critic", self.model.critic_loss(x), len(x))
            self._log("test/generator", self.model.generator_loss(x), len(x))
        else:
            self._log("test", self.model.loss(x), len(x))

    def _finite(self, loss: Tensor) -> Tensor:
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}); "
                "training stopped. The run folder keeps the checkpoint of the last completed epoch, if there is one; "
                "try a smaller learning rate, gradient clipping (--grad-clip) or a smaller model.")
        return loss

    def _log(self, prefix: str, losses: dict[str, Tensor], batch_size: int) -> None:
        """Test values are averaged over the epoch. Training values are logged only on the steps that the logger
        writes (every ``log_every_n_steps``): ``self.log`` costs about a millisecond, as much as a small model's
        whole step (benchmarks/train_speed.py)."""
        training = prefix.startswith("train")
        if training and not self.trainer._logger_connector.should_update_logs:
            return
        for name, value in losses.items():
            self.log(f"{prefix}/{name}", value.detach(), batch_size=batch_size, on_step=training, on_epoch=not training,
                     prog_bar=name == "loss", sync_dist=not training)

    # -- optimisation -------------------------------------------------------------------------------------------
    def configure_optimizers(self):
        betas = self.model.adam_betas
        if self.model.adversarial:
            groups = [self.model.generator_parameters(), self.model.critic_parameters()]
        else:
            groups = [self.model.parameters()]
        optimizers = [torch.optim.Adam(params, lr=self.lr, betas=betas) for params in groups]
        if self.lr_schedule == "constant":
            return optimizers
        total = max(1, self._batches_in_run())
        schedulers = [torch.optim.lr_scheduler.LambdaLR(optimizer, _Cosine(total)) for optimizer in optimizers]
        return optimizers, [{"scheduler": s, "interval": "step"} for s in schedulers]

    def _batches_in_run(self) -> int:
        """How many batches the run trains on: the length of a schedule that steps once per batch.

        For adversarial models Lightning's ``max_steps`` counts every optimizer step, ``critic_steps`` critic
        updates and one generator update per cycle of ``critic_steps`` batches.
        """
        if self.model.adversarial and self.trainer.max_steps != -1:
            cycle = self.model.critic_steps
            return self.trainer.max_steps * cycle // (cycle + 1)
        return int(self.trainer.estimated_stepping_batches)  # finite: fit() demands max_steps or max_epochs


class _Cosine:
    """Multiplier of the learning rate: half a cosine from 1 down to 0 over ``total`` steps (picklable)."""

    def __init__(self, total: int):
        self.total = total

    def __call__(self, step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, self.total) / self.total))
