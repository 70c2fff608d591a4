"""The run folder: the one place that names its files and says what makes a folder a run.

::

    RUN/
      run.json            model and data names, data options, training options, seconds trained (written by fit)
      config.json         the model: its registry name and constructor arguments      } the model format of
      model.safetensors   its weights                                                  } dgm.checkpoint
      checkpoints/        trainer state at each epoch end; last.safetensors to resume from
      logs/               csv-K/metrics.csv for each part K of a resumed run; tensorboard/
      metrics.json        written by evaluation
      *.png               pictures: samples.png and curves.png first
      .lock               held by the process that trains the run (see RunFolder.owned)

A folder is a run when it holds ``run.json``. Training (:mod:`dgm.training`), evaluation and pictures
(:mod:`dgm.runs`) and the report (:mod:`dgm.report`) all reach these files through :class:`RunFolder`.
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_warn

from dgm.api import load
from dgm.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_json, write_json
from dgm.data.base import Data
from dgm.data.base import load as load_data

RUN_FILE = "run.json"
METRICS_FILE = "metrics.json"
SAMPLES_PICTURE = "samples.png"
CURVES_PICTURE = "curves.png"
FIRST_PICTURES = (SAMPLES_PICTURE, CURVES_PICTURE)
LOCK_FILE = ".lock"


class RunInUse(ValueError):
    """Another process is training the run in this folder."""


class RunFolder:
    """The files of the run in ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- where things are --------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """The trainer state a resumed run continues from."""
        return self.checkpoints / "last.safetensors"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def picture(self, name: str) -> Path:
        return self.path / name

    def is_run(self) -> bool:
        return (self.path / RUN_FILE).is_file()

    def check_free_for_a_new_run(self) -> None:
        """A new run may go into a folder that does not exist yet or is empty, nowhere else (``ValueError``)."""
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"{self.path} is a file, not a folder; choose another output folder")
        if self.is_run() or self.last_checkpoint.exists():
            raise ValueError(f"{self.path} already holds a run; resume it (resume=True / --resume) or choose a new "
                             "output folder")
        if self.path.is_dir() and any(entry.name != LOCK_FILE for entry in self.path.iterdir()):
            raise ValueError(f"{self.path} is not empty and holds no run; choose a new or empty output folder")

    @contextmanager
    def owned(self) -> Iterator[None]:
        """Hold the folder for this process while the block runs; another process that tries meanwhile gets
        :class:`RunInUse`, naming this process.

        The hold is an OS lock (``flock``) on ``.lock``, which the OS releases when the process ends in any way,
        ``kill -9`` included: a lock left by a dead process never blocks a later run. The file keeps the process id
        of its last holder, for the message. The folder is created if it does not exist.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a+") as lock:
            self._hold(lock, fcntl.LOCK_EX)
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def check_not_in_use(self) -> None:
        """:class:`RunInUse` if a process holds the folder (:meth:`owned`); creates nothing."""
        if (self.path / LOCK_FILE).is_file():
            with open(self.path / LOCK_FILE) as lock:
                self._hold(lock, fcntl.LOCK_SH)

    def training_process(self) -> str | None:
        """The id of the process that holds the folder (:meth:`owned`), ``None`` where none does."""
        try:
            self.check_not_in_use()
        except RunInUse:
            return (self.path / LOCK_FILE).read_text().strip() or "?"
        return None

    def _hold(self, lock, kind: int) -> None:
        try:
            fcntl.flock(lock, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise RunInUse(f"{self.path} is in use: process {lock.read().strip() or '?'} is training this run; "
                           "wait for it to end or choose another output folder") from None

    def csv_logs(self) -> list[Path]:
        """The CSV logs of the run, one per training part (a resumed run adds a part), in order."""
        return sorted(self.logs.glob("csv-*/metrics.csv"), key=lambda path: int(path.parent.name[4:]))

    def next_csv_version(self) -> str:
        """The name of the CSV log folder of the next training part."""
        return f"csv-{len(self.csv_logs())}"

    def pictures(self) -> list[Path]:
        """``samples.png`` and ``curves.png`` first, then the folder's other PNG files by name."""
        first = [self.path / name for name in FIRST_PICTURES if (self.path / name).is_file()]
        others = sorted(path for path in self.path.glob("*.png") if path.name not in FIRST_PICTURES)
        return first + others

    # -- what is in it ---------------------------------------------------------------------------------------------
    def read_record(self) -> dict:
        """``run.json``; a folder without one is not a run folder (``ValueError``)."""
        if not self.is_run():
            raise ValueError(f"{self.path} is not a run folder (no {RUN_FILE}); train one with `dgm train`")
        return _json_object(self.path / RUN_FILE)

    def training_precision(self) -> str:
        """The Lightning precision the run trained in (``"32-true"``, ``fit``'s default, for runs that name none)."""
        return self.read_record().get("train", {}).get("precision", "32-true")

    def write_record(self, record: dict) -> None:
        write_json(self.path / RUN_FILE, record)

    def read_config(self) -> dict:
        """``config.json``: ``{"model": name, "config": {...}}``."""
        config = _json_object(self.path / CONFIG_FILE)
        if "model" not in config:
            raise ValueError(f"{self.path / CONFIG_FILE} must name the model: {{\"model\": name, \"config\": {{...}}}}")
        return config

    def read_metrics(self) -> dict | None:
        """``metrics.json``, or ``None`` if the run has not been evaluated since it last trained."""
        path = self.path / METRICS_FILE
        return _json_object(path) if path.is_file() else None

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.path / METRICS_FILE, metrics)

    def forget_metrics(self) -> None:
        """Remove ``metrics.json``: it evaluated the model as it was before further training."""
        (self.path / METRICS_FILE).unlink(missing_ok=True)

    def holds_model(self) -> bool:
        return (self.path / WEIGHTS_FILE).is_file()

    def load_model(self):
        """The model, rebuilt from ``config.json`` and ``model.safetensors``; with a warning where a process is
        still training the run, whose weights are then those it exported at its last epoch's end."""
        process = self.training_process()
        if process is not None:
            rank_zero_warn(f"{self.path} is still being trained by process {process}: this is the model it exported "
                           "at its last epoch's end, not the final one")
        return load(self.path)

    def load_data(self) -> Data:
        """The data set the run was trained on, rebuilt from its name and options."""
        record = self.read_record()
        if "data" not in record:
            raise ValueError(f"{self.path / RUN_FILE} does not name the run's data set")
        return load_data(record["data"], **record.get("data_options", {}))


def find_runs(root: str | Path) -> list[RunFolder]:
    """``root`` itself if it is a run folder, else every run folder below it, sorted."""
    root = RunFolder(root)
    if root.is_run():
        return [root]
    runs = [RunFolder(folder) for folder in sorted(record.parent for record in root.path.rglob(RUN_FILE))]
    if not runs:
        raise ValueError(f"no run folders (folders with a {RUN_FILE}) found in {root.path}")
    return runs


def _json_object(path: Path) -> dict:
    content = read_json(path)
    if not isinstance(content, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(content).__name__}")
    return content
