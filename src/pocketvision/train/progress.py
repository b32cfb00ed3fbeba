"""The training progress bar (rich): ETA, loss and throughput; silent when disabled."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress


class Progress:
    """One bar per epoch plus a line per finished epoch; does nothing when ``enabled`` is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.console = Console(stderr=False, highlight=False)
        self._bar: RichProgress | None = None
        self._task: Any = None

    def print(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, soft_wrap=True)

    def start_epoch(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        if not self.enabled or not self.console.is_terminal:
            return  # logs and pipes get the per-epoch lines only
        self._bar = RichProgress(
            TextColumn(f"epoch {epoch + 1}/{epochs}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[rate]:.0f} img/s"),
            console=self.console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("train", total=steps, completed=done, loss=0.0, rate=0.0)

    def advance(self, loss: float, rate: float, completed: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=completed, loss=loss, rate=rate)

    def end_epoch(self, row: dict[str, Any], improved: bool) -> None:
        self.close()
        self.print(
            f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4f}  "
            f"train {100 * row['train_accuracy']:.2f}%  val {100 * row['val_accuracy']:.2f}%"
            f"{' *' if improved else '  '}  lr {row['lr']:.2e}  "
            f"{row['images_per_s']:.0f} img/s  {row['seconds']:.1f} s"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
