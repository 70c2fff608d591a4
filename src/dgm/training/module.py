"""The Lightning adapter: one ``LightningModule`` that trains any :class:`~dgm.core.GenerativeModel`."""
from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import Tensor

from dgm.core import LR_SCHEDULES
from dgm.training.progress import Progress, StopCondition, schedule_factor


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run folder keeps the checkpoint of the last completed epoch, if any."""


class TrainingModule(L.LightningModule):
    """Trains any :class:`~dgm.core.GenerativeModel` through its training hooks, with one Adam per optimizer group.

    ``objective`` is what is minimised: the model itself (its ``training_step`` and ``loss``) unless another
    objective with the same two methods is given (:class:`dgm.objectives.ReverseKL`). Optimisation is manual: for each
    ``(group, losses)`` update that ``training_step`` yields, the group's optimizer takes one step on
    ``losses["loss"]`` (gradients clipped to norm ``grad_clip`` where given), then the model's ``after_update`` runs.
    At the start and after each batch every group's learning rate is set by its schedule (``lr_schedule``,
    ``"constant"`` or ``"cosine"``, unless the group has its own) at the fraction of the run done towards its
    ``stop`` condition (:mod:`dgm.training.progress`): the cosine falls from the group's rate to zero at the end.

    Training batches arrive as example indices (:class:`~dgm.training.data.ShuffledBatches`) and ``train_batch``
    turns them into data inside the step, so that any randomness it draws follows the checkpointed generator.
    It must be a plain function (``fit`` passes a lambda): the EMA callback deep-copies this module, and
    ``copy.deepcopy`` shares functions but would copy a callable object, and with it a whole training set.
    ``train_labels`` (a plain function too) gives the class labels of the indices for a class-conditional model
    (``model.n_classes``), which then receives ``labels=`` in training and validation alike; test batches then
    arrive as ``(x, labels)`` pairs.
    """

    def __init__(self, model, train_batch: Callable[[Tensor], Tensor], lr: float, lr_schedule: str = "constant",
                 grad_clip: float | None = None, train_labels: Callable[[Tensor], Tensor] | None = None,
                 objective=None, stop: StopCondition = StopCondition()):
        super().__init__()
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {lr_schedule!r}")
        self.model = model
        self.objective = model if objective is None else objective
        self.groups = model.optimizer_groups()
        self.lr, self.lr_schedule, self.grad_clip, self.stop = lr, lr_schedule, grad_clip, stop
        self.train_batch, self.train_labels = train_batch, train_labels
        self.automatic_optimization = False
        self.batches_trained = 0  # drives the order of training batches (dgm.training.data.ShuffledBatches)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["batches_trained"] = self.batches_trained

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.batches_trained = checkpoint["batches_trained"]

    def on_train_start(self) -> None:
        self._schedule_learning_rates()

    def _updates_itself_and_reached_max_steps(self) -> bool:
        """A model without optimizers (EM) takes no optimizer step, which Lightning's ``max_steps`` counts: each of
        its batches is one step of its own."""
        return not self.groups and self.stop.max_steps is not None and self.batches_trained >= self.stop.max_steps

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.batches_trained += 1
        if self.stop.epochs_reached(self.batches_trained, self.trainer.num_training_batches) or \
                self._updates_itself_and_reached_max_steps():
            self.trainer.should_stop = True
        self._schedule_learning_rates()

    # -- steps --------------------------------------------------------------------------------------------------
    def training_step(self, indices: Tensor, batch_idx: int) -> None:
        x = self.train_batch(indices).to(self.device)
        condition = {} if self.train_labels is None else {"labels": self.train_labels(indices).to(self.device)}
        optimizers = dict(zip((group.name for group in self.groups), self._optimizers()))
        for name, losses in self.objective.training_step(x, self.batches_trained, **condition):
            if name is not None:  # None: the model updated itself (an EM step); its losses are only logged
                self._update(optimizers[name], losses)
                self.model.after_update(name)
            self._log("train" if len(self.groups) <= 1 else f"train/{name}", losses, len(x))

    def _optimizers(self) -> list:
        if not self.groups:
            return []
        optimizers = self.optimizers()
        return optimizers if isinstance(optimizers, list) else [optimizers]

    def _update(self, optimizer, losses: dict[str, Tensor]) -> None:
        optimizer.zero_grad()
        self.manual_backward(self._finite(losses["loss"]))
        if self.grad_clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        optimizer.step()

    def validation_step(self, batch: Tensor | tuple[Tensor, Tensor], batch_idx: int) -> None:
        if self.trainer.should_stop and self.batches_trained % self.trainer.num_training_batches:
            return  # stopped within an epoch (max_time, max_steps, Ctrl-C): the final evaluation of the run follows
        x, condition = (batch[0], {"labels": batch[1]}) if isinstance(batch, tuple) else (batch, {})
        self._log("test", self.objective.loss(x, **condition), len(x))

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
    def configure_optimizers(self) -> list[torch.optim.Adam]:
        """One Adam per group, with PyTorch's fused kernel (one pass over all parameters instead of a loop over the
        tensors: a third of a small VAE's CPU step, benchmarks/train_speed.py), except where gradients are clipped
        in mixed precision: Lightning refuses to clip for an optimizer that unscales gradients itself, as the fused
        one does."""
        fused = self.grad_clip is None or not isinstance(self.trainer.precision_plugin, MixedPrecision)
        return [torch.optim.Adam(group.parameters, lr=self._base_lr(group), betas=group.betas, fused=fused)
                for group in self.groups]

    def _base_lr(self, group) -> float:
        return self.lr if group.lr is None else group.lr

    def _schedule_learning_rates(self) -> None:
        """Each group's rate for the next batch: its base rate times its schedule at the run's progress."""
        done = self.stop.fraction_done(Progress(self.trainer.global_step, self.batches_trained),
                                       self.trainer.num_training_batches)
        for group, optimizer in zip(self.groups, self._optimizers()):
            factor = schedule_factor(group.schedule or self.lr_schedule, done)
            for parameters in optimizer.param_groups:
                parameters["lr"] = self._base_lr(group) * factor
