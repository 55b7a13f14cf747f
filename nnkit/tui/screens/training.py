"""Training: `nnkit.train.fit` on the digits (or synthetic) example, live.

The run happens in a thread worker (exclusive: starting again cancels the old
run); its `fit` callback posts the batch losses to the screen, which draws
them as a sparkline with the validation accuracy per epoch beneath. `x`
cancels (the callback raises StopTraining at the next batch), `s` starts a
new run, esc goes back (cancelling a run in progress). The model, data and
optimizer are `nnkit train`'s example (nnkit.train.example_data/example_model).

At 80×24 the title fits one line (the keys are in the footer) and the epoch
table keeps its header in place while its rows, every epoch, scroll and
follow the newest: the last epochs are the ones on screen.
"""
from __future__ import annotations

import math
import time

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Sparkline, Static
from textual.worker import get_current_worker

from nnkit import optim, train
from nnkit.layers import SoftmaxCrossEntropy

MESSAGE_INTERVAL = 0.05     # seconds between progress messages from the worker
TABLE_HEAD = "epoch  train loss  train acc  val loss  val acc"


class TrainingProgress(Message):
    def __init__(self, run: int, epoch: int, epochs: int, batch: int, batches: int,
                 batch_loss: list[float], history: dict) -> None:
        super().__init__()
        self.run = run
        self.epoch, self.epochs, self.batch, self.batches = epoch, epochs, batch, batches
        self.batch_loss = batch_loss
        self.history = history


class TrainingFinished(Message):
    def __init__(self, run: int, history: train.History, test_loss: float, test_acc: float,
                 dataset: str, error: str | None = None) -> None:
        super().__init__()
        self.run = run
        self.history = history
        self.test_loss, self.test_acc = test_loss, test_acc
        self.dataset = dataset
        self.error = error


class TrainingScreen(Screen):
    DEFAULT_CSS = """
    TrainingScreen #train-title { height: auto; background: $panel; padding: 0 1; }
    TrainingScreen #train-status { height: auto; padding: 0 1; }
    TrainingScreen .train-label { height: 1; margin-top: 1; padding: 0 1; }
    TrainingScreen Sparkline { height: 4; padding: 0 1; }
    TrainingScreen #train-table-head { height: 1; padding: 0 1; text-style: bold; }
    TrainingScreen #train-table-scroll { height: 1fr; }
    TrainingScreen #train-table { height: auto; padding: 0 1; }
    """
    BINDINGS = [
        Binding("x", "cancel", "Cancel", tooltip="stop the run after the current batch"),
        Binding("s", "start", "Start", tooltip="start a new run (cancels the current one)"),
        Binding("escape,q", "close", "Back", tooltip="back (cancels a run in progress)"),
    ]
    DEFAULT_EPOCHS = 20

    def __init__(self, dataset: str = "auto", epochs: int | None = None, batch_size: int = 32,
                 lr: float = 1e-2, hidden: int = 64, seed: int = 0) -> None:
        super().__init__()
        self.dataset = dataset
        self.epochs = epochs if epochs is not None else self.DEFAULT_EPOCHS
        self.batch_size, self.lr, self.hidden, self.seed = batch_size, lr, hidden, seed
        self.losses: list[float] = []
        self.history: dict = {}
        self.running = False
        self.cancelled = False
        self.finished: TrainingFinished | None = None
        self.run_id = 0         # messages of an older (cancelled) run are ignored

    def compose(self) -> ComposeResult:
        # the keys (x cancel, s restart, esc back) are in the footer
        yield Static(f"Training: MLP 64-{self.hidden}-10, Adam lr={self.lr:g}, batch "
                     f"{self.batch_size}, {self.epochs} epochs", id="train-title")
        yield Static("starting…", id="train-status")
        yield Static("train loss per batch", classes="train-label")
        yield Sparkline([], id="train-loss", summary_function=max)
        yield Static("validation accuracy per epoch", classes="train-label")
        yield Sparkline([], id="train-acc", summary_function=max)
        yield Static(TABLE_HEAD, id="train-table-head")
        with VerticalScroll(id="train-table-scroll"):      # ↑/↓ read older epochs
            yield Static("", id="train-table")
        yield Footer()

    def on_mount(self) -> None:
        self.action_start()

    # ----------------------------------------------------------- actions
    def action_start(self) -> None:
        self.losses, self.history, self.finished = [], {}, None
        self.running, self.cancelled = True, False
        self.run_id += 1
        self._status("starting…")
        self._run(self.run_id)

    def action_cancel(self) -> None:
        if self.running:
            self.cancelled = True
            self.workers.cancel_group(self, "training")
            self._status("cancelling…")

    def action_close(self) -> None:
        self.action_cancel()
        self.app.pop_screen()

    # ------------------------------------------------------------ worker
    @work(thread=True, exclusive=True, group="training")
    def _run(self, run: int) -> None:
        worker = get_current_worker()
        last = [0.0]

        def callback(ev: train.Progress) -> None:
            if worker.is_cancelled:
                raise train.StopTraining
            now = time.monotonic()
            if ev.kind == "epoch" or now - last[0] >= MESSAGE_INTERVAL:
                last[0] = now
                self.post_message(TrainingProgress(
                    run, ev.epoch, ev.epochs, ev.batch, ev.batches,
                    list(ev.history.batch_loss), ev.history.as_dict()))
        try:
            data = train.example_data(self.dataset, self.seed)
            model = train.example_model(data.X_train.shape[1], data.classes, self.hidden,
                                        self.seed)
            loss = SoftmaxCrossEntropy()
            opt = optim.Adam(model, lr=self.lr)
            hist = train.fit(model, loss, opt, data.X_train, data.y_train, self.epochs,
                             self.batch_size, X_val=data.X_test, y_val=data.y_test,
                             rng=np.random.default_rng(self.seed), progress=False,
                             callback=callback)
            test_loss, test_acc = train.evaluate(model, loss, data.X_test, data.y_test)
        except Exception as exc:      # shown on the screen, never a crashed app
            self.post_message(TrainingFinished(run, train.History(), math.nan, math.nan,
                                               self.dataset, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(TrainingFinished(run, hist, test_loss, test_acc, data.name))

    # ---------------------------------------------------------- messages
    def on_training_progress(self, msg: TrainingProgress) -> None:
        if msg.run != self.run_id or not self.running:
            return
        self.losses = msg.batch_loss
        self.history = msg.history
        self.query_one("#train-loss", Sparkline).data = _tail(self.losses)
        self.query_one("#train-acc", Sparkline).data = [
            x for x in msg.history["val_acc"] if math.isfinite(x)]
        self._status(f"epoch {msg.epoch}/{msg.epochs}, batch {msg.batch}/{msg.batches}, "
                     f"loss {self.losses[-1]:.4f}")
        self._table(msg.history)

    def on_training_finished(self, msg: TrainingFinished) -> None:
        if msg.run != self.run_id:
            return
        self.running = False
        self.finished = msg
        h = msg.history
        if msg.error:
            self._status(f"failed: {msg.error}")
            return
        self.losses = list(h.batch_loss)
        self.history = h.as_dict()
        self.query_one("#train-loss", Sparkline).data = _tail(self.losses)
        self.query_one("#train-acc", Sparkline).data = [
            x for x in h.val_acc if math.isfinite(x)]
        self._table(self.history)
        what = (f"cancelled after {len(h.epoch)} epoch(s) and {len(h.batch_loss)} batches"
                if h.stopped else f"done: {len(h.epoch)} epochs")
        self._status(f"{what} on {msg.dataset}, {h.seconds:.2f} s; test accuracy "
                     f"{msg.test_acc:.2%} (loss {msg.test_loss:.4f})")

    # ----------------------------------------------------------- helpers
    def _status(self, text: str) -> None:
        self.query_one("#train-status", Static).update(text)

    def _table(self, h: dict) -> None:
        """Every epoch (the header stands above the scrolling rows)."""
        n = min((len(h[k]) for k in ("epoch", "train_loss", "train_acc", "val_loss",
                                      "val_acc")), default=0)
        lines = [f"{h['epoch'][i]:>5}  {h['train_loss'][i]:>10.4f}  {h['train_acc'][i]:>9.2%}  "
                 f"{h['val_loss'][i]:>8.4f}  {h['val_acc'][i]:>7.2%}" for i in range(n)]
        scroll = self.query_one("#train-table-scroll", VerticalScroll)
        # follow the newest epoch unless the user has scrolled up to read older
        # ones (not Widget.anchor(): Textual 8 then draws a short table at the
        # bottom of the pane, under blank lines)
        follow = scroll.scroll_y >= scroll.max_scroll_y
        self.query_one("#train-table", Static).update("\n".join(lines))
        if follow:
            scroll.scroll_end(animate=False)


def _tail(values: list[float], n: int = 400) -> list[float]:
    """The last n batch losses (a sparkline as wide as the screen shows fewer anyway)."""
    return values[-n:]
