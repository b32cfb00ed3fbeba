"""``search(...)``: the most accurate models under a size and latency budget, on Optuna.

One trial: sample a point of the space (TPE, multi-objective), build the model and check the
budgets on it (params, then the deploy file's size, then its latency in the deploy runtime,
``budget``); an infeasible
trial ends there as PRUNED with the number that broke the budget. A feasible one trains as a
normal run folder (``OUT/trials/NNNN``) with :func:`pocketvision.train.train`, and its values
are (validation accuracy, latency ms, size bytes).

Pruning: Optuna's pruners do not work on multi-objective studies (``trial.report`` raises).
Each trained trial therefore has a twin in a single-objective study ``STUDY.prune`` (same
storage, maximising validation accuracy, Optuna's SuccessiveHalvingPruner): after each epoch
the twin gets the accuracy and the pruner decides; a pruned trial stops training after that
epoch and is told PRUNED. The pruner judges accuracy alone, so it may stop a small model that
would have been on the front; ``prune=False`` turns it off. With one epoch nothing is pruned.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import Trial, TrialState

from pocketvision.console import is_verbose
from pocketvision.errors import PocketvisionError
from pocketvision.search import budget as budgets
from pocketvision.search import report
from pocketvision.search import study as studies
from pocketvision.search.space import SearchSpace, TrialChoice, candidates, image_sizes, sample

DEFAULT_MODELS = "mobilenet*,shufflenet*"
TRIALS_DIR = "trials"


@dataclass(frozen=True)
class _Search:
    """What every trial of one search shares."""

    space: SearchSpace
    budget: budgets.Budget
    data: str
    epochs: int
    num_classes: int
    in_chans: int
    out: Path
    train_limit: int | None
    seed: int | None  # None: a fresh sampler seed, training seed 0
    trials: int  # the study's total
    batch_size: int
    prune: bool
    definition: dict[str, Any]


def parse_duration(text: str | float | None) -> float | None:
    """``"30m"``, ``"2h"``, ``"90s"`` or seconds -> seconds (None stays None).

    Raises:
        PocketvisionError: Not a duration.
    """
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise PocketvisionError(f"--time-budget {text!r}: give e.g. 90s, 30m or 2h") from None
    if seconds <= 0:
        raise PocketvisionError(f"--time-budget {text!r} must be > 0")
    return seconds


def _data_shape(data: str, img_size: int | None) -> tuple[int, int, int]:
    """(classes, in_chans, default size) of the data source, loading it once (bad data fails
    here, before the study is touched)."""
    from pocketvision.data import default_image_size, load_data
    from pocketvision.preprocess import Preprocessing

    chans, size = default_image_size(data)
    side = img_size or size
    splits = load_data(data, Preprocessing((chans, side, side), (0.5,) * chans, (0.5,) * chans))
    return len(splits.classes), chans, size


def _train_config(s: _Search, choice: TrialChoice, run_dir: Path) -> Any:
    from pocketvision.train import TrainConfig

    return TrainConfig(
        data=s.data,
        model=choice.model,
        width_mult=choice.width_mult,
        img_size=choice.img_size,
        lr=choice.lr,
        augment=choice.augment,
        label_smoothing=choice.label_smoothing,
        epochs=s.epochs,
        batch_size=s.batch_size,
        train_limit=s.train_limit,
        seed=s.seed or 0,
        out=str(run_dir),
        quiet=True,
    )


def _measured_before(trial: Trial, choice: TrialChoice) -> budgets.Known:
    """What an earlier trial of the study measured for the same model: the file's size (the
    same on any host) and its latency when timed on this host."""
    host = trial.user_attrs.get("host")
    size, latency = None, None
    for other in trial.study.get_trials(deepcopy=False):
        attrs = other.user_attrs
        recipe = attrs.get("recipe", {})
        if (
            other.number == trial.number
            or not attrs.get("converted")
            or (recipe.get("model"), recipe.get("width_mult"), recipe.get("img_size"))
            != (choice.model, choice.width_mult, choice.img_size)
        ):
            continue
        size = attrs["size_bytes"]
        if attrs.get("host") == host and attrs.get("latency_ms") is not None:
            latency = float(attrs["latency_ms"])
    return budgets.Known(size, latency)


def _check_budget(trial: Trial, s: _Search, choice: TrialChoice) -> budgets.Cost:
    model = budgets.build(choice, s.num_classes, s.in_chans)
    shape = (s.in_chans, choice.img_size, choice.img_size)
    key = budgets.timing_key(choice, s.num_classes, s.in_chans, s.budget)
    known = _measured_before(trial, choice)
    cost = budgets.measure(model, shape, s.budget, known=known, key=key)
    for name in ("params", "size_bytes", "latency_ms", "converted"):
        trial.set_user_attr(name, getattr(cost, name))
    return cost


def _train(trial: Trial, s: _Search, choice: TrialChoice, twin: optuna.Study | None) -> bool:
    """Train the trial's run folder; True when the pruner stopped it."""
    from pocketvision.rundir import free_run_dir
    from pocketvision.train import StopTraining, train

    # numbered if taken: a study deleted by hand leaves its trials' folders behind
    run_dir = free_run_dir(s.out / TRIALS_DIR / f"{trial.number:04d}")
    trial.set_user_attr("run_dir", str(run_dir))
    twin_trial = twin.ask() if twin is not None else None
    if twin_trial is not None:
        trial.set_user_attr("prune_trial", twin_trial.number)
    pruned = False

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        nonlocal pruned
        trial.set_user_attr("accuracy", row["val_accuracy"])
        if twin_trial is not None and epoch < s.epochs:
            twin_trial.report(row["val_accuracy"], epoch)
            if twin_trial.should_prune():
                pruned = True
                raise StopTraining

    state = TrialState.FAIL
    try:
        summary = train(_train_config(s, choice, run_dir), on_epoch=on_epoch)
        trial.set_user_attr("accuracy", summary["best_val_accuracy"])
        state = TrialState.PRUNED if pruned else TrialState.COMPLETE
    finally:
        if twin is not None and twin_trial is not None:
            value = trial.user_attrs.get("accuracy") if state == TrialState.COMPLETE else None
            twin.tell(twin_trial, value, state=state if value is None else None)
    return pruned


def _objective(s: _Search, twin: optuna.Study | None) -> Callable[[Trial], tuple[float, ...]]:
    def objective(trial: Trial) -> tuple[float, ...]:
        started = time.perf_counter()
        for key, value in studies.worker_attrs().items():
            trial.set_user_attr(key, value)
        choice = sample(trial, s.space)
        kwargs = {} if choice.width_mult is None else {"width_mult": choice.width_mult}
        trial.set_user_attr("model", choice.model)
        trial.set_user_attr("kwargs", kwargs)
        trial.set_user_attr("recipe", asdict(choice))
        try:
            cost = _check_budget(trial, s, choice)
            if cost.broke:
                trial.set_user_attr("broke", cost.broke)
                raise optuna.TrialPruned(cost.broke)
            pruned = _train(trial, s, choice, twin)
        except PocketvisionError as err:
            trial.set_user_attr("error", str(err))
            raise
        finally:
            trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        if pruned:
            raise optuna.TrialPruned("stopped by the pruner")
        assert cost.latency_ms is not None
        return (trial.user_attrs["accuracy"], cost.latency_ms, float(cost.size_bytes))

    return objective


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines and trial-failure warnings only with --verbose (our line says it)."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO if is_verbose() else optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _after_trial(
    out: Path, definition: dict[str, Any], total: int, log: Callable[[str], None]
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        report.write_reports(study, out, definition)
        log(report.progress_line(report.record(trial), total))

    return callback


@dataclass
class SearchResult:
    """What :func:`search` returns: the summary.json content and where the files are."""

    out: Path
    summary: dict[str, Any]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.summary["best"]


def search(
    data: str,
    *,
    models: str = DEFAULT_MODELS,
    img_size: int | None = None,
    max_params: int | None = None,
    max_size_kb: float | None = None,
    max_latency_ms: float | None = None,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    trials: int = 20,
    epochs: int = 3,
    time_budget: str | float | None = None,
    storage: str | None = None,
    study: str = "search",
    out: str | Path | None = None,
    train_limit: int | None = None,
    batch_size: int = 128,
    threads: int = 1,
    seed: int | None = None,
    prune: bool = True,
    log: Callable[[str], None] | None = print,
) -> SearchResult:
    """Search the zoo for the most accurate models within a budget; see the module docstring.

    Args:
        data: Any ``pocketvision train --data`` source.
        models: Comma-separated shell patterns of registered names (``mobilenet*,lenet5``).
        img_size: Fix the input side; None searches what the data allows.
        max_params: Most parameters a model may have.
        max_size_kb: Largest deploy file (KB = 1000 bytes): ``runtime``'s file at
            ``precision``, as ``pocketvision export`` writes it.
        max_latency_ms: Slowest batch-1 median latency of that file in ``runtime`` here.
        runtime: onnxruntime, litert or executorch.
        precision: fp32, fp16 or int8: the precision of the file sized and timed.
        trials: The study's total: a re-run adds trials until it holds this many.
        epochs: Training epochs per feasible trial.
        time_budget: Stop starting trials after this long ("30m", "2h", seconds).
        storage: Database URL or journal file shared by workers; default OUT/study.journal.
        study: The study's name in the storage.
        out: Output folder; default ``runs/search-STUDY``.
        train_limit: Train each trial on at most this many images (quick searches).
        batch_size: Training batch size of every trial.
        threads: CPU threads of the latency measurement.
        seed: Seeds the sampler and every trial's training; None: a fresh sampler seed.
        prune: Stop unpromising trials early (see the module docstring).
        log: Where progress lines go (None: nowhere).

    Returns:
        The :class:`SearchResult` (summary.json's content: best, front, states).

    Raises:
        PocketvisionError: Bad input: unknown pattern, runtime or precision, a budget no model
            meets, an unreachable storage, a study that exists with another definition.
    """
    say = log or (lambda _line: None)
    limit = budgets.Budget(max_params, max_size_kb, max_latency_ms, runtime, precision, threads)
    limit.validate()
    seconds = parse_duration(time_budget)
    if trials < 1 or epochs < 1:
        raise PocketvisionError("--trials and --epochs must be >= 1")
    folder = Path(out) if out is not None else Path("runs") / f"search-{study}"
    space_models = candidates(models)
    storage_ = studies.open_storage(storage, folder)
    num_classes, chans, default_size = _data_shape(data, img_size)
    sizes = image_sizes(default_size, img_size)
    space = SearchSpace(space_models, sizes, (0.01, 0.4))
    budgets.check_reachable(space, limit, num_classes, chans)
    # the study's definition keeps the space as asked; what is sampled is what can fit
    fitted, narrowed = budgets.fit_widths(space, limit, num_classes, chans)
    for line in narrowed:
        say(line)
    definition = {
        "space": space.to_dict(),
        "data": data,
        "epochs": epochs,
        "train_limit": train_limit,
        "batch_size": batch_size,
        "budget": asdict(limit),
    }
    s = _Search(
        fitted, limit, data, epochs, num_classes, chans, folder, train_limit, seed, trials,
        batch_size, prune, definition,
    )  # fmt: skip
    with _quiet_optuna():
        summary = _run(s, storage_, study, seconds, say)
    return SearchResult(folder, summary)


def _studies(s: _Search, storage: Any, name: str) -> tuple[optuna.Study, optuna.Study | None]:
    """The search's multi-objective study and, when pruning, its single-objective twin."""
    sampler = optuna.samplers.TPESampler(seed=None, constant_liar=True)
    study = studies.open_study(storage, name, s.definition, sampler)
    if s.seed is not None:
        # a resumed search must not replay the samples of the first run
        study.sampler = optuna.samplers.TPESampler(
            seed=s.seed + len(study.trials), constant_liar=True
        )
    twin = None
    if s.prune and s.epochs > 1:
        twin = optuna.create_study(
            study_name=f"{name}.prune",
            storage=storage,
            direction="maximize",
            pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
            load_if_exists=True,
        )
    return study, twin


def _optimize(s: _Search, study: optuna.Study, twin: optuna.Study | None, seconds: float | None,
              say: Callable[[str], None]) -> None:  # fmt: skip
    """Run trials until the study holds ``s.trials``, the time is up, or a round only failed
    (a failed trial does not count, so it is retried, but not forever)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = [
        optuna.study.MaxTrialsCallback(s.trials, states=studies.COUNTED),
        _after_trial(s.out, s.definition, s.trials, say),
    ]
    while (remaining := s.trials - studies.counted(study)) > 0:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        before = studies.counted(study)
        study.optimize(
            _objective(s, twin),
            n_trials=remaining,
            timeout=left,
            catch=(PocketvisionError,),
            callbacks=callbacks,
        )
        if studies.counted(study) == before:
            break


def _run(
    s: _Search, storage: Any, name: str, seconds: float | None, say: Callable[[str], None]
) -> dict[str, Any]:
    study, twin = _studies(s, storage, name)
    failed = studies.fail_dead_trials(study, twin)
    if failed:
        say(f"marked {len(failed)} trial(s) of a stopped search as failed: {failed}")
    s.out.mkdir(parents=True, exist_ok=True)
    say(f"study {name}: {len(s.space.candidates)} model(s), {studies.counted(study)} of "
        f"{s.trials} trials in the study, storage {type(storage).__name__} -> {s.out}")  # fmt: skip
    _optimize(s, study, twin, seconds, say)
    summary = report.write_reports(study, s.out, s.definition)
    entries = [report.record(t) for t in study.get_trials(deepcopy=False)]
    report.plot_pareto(
        entries, [e["number"] for e in summary["pareto_front"]], s.out / report.PARETO
    )
    if summary["pareto_front"]:
        say("Pareto front (accuracy up, latency and size down):\n" + report.front_table(summary))
    best = summary["best"]
    if best:
        say(f"best: {best['run_dir']} ({best['model']}, {100 * best['accuracy']:.2f}%)")
    return summary
