"""``pocketvision search``: the library's :func:`~pocketvision.search.search`, from the shell."""

from __future__ import annotations

import argparse

from pocketvision.search.space import BYTES_PER_PARAM, SEARCH_RUNTIMES


def _search(args: argparse.Namespace) -> int:
    from pocketvision.search import search

    result = search(
        args.data,
        models=args.models,
        img_size=args.img_size,
        max_params=args.max_params,
        max_size_kb=args.max_size_kb,
        max_latency_ms=args.max_latency_ms,
        runtime=args.runtime,
        precision=args.precision,
        trials=args.trials,
        epochs=args.epochs,
        time_budget=args.time_budget,
        storage=args.storage,
        study=args.study,
        out=args.out,
        train_limit=args.train_limit,
        batch_size=args.batch_size,
        threads=args.threads,
        seed=args.seed,
        prune=not args.no_prune,
    )
    print(f"trials: {result.out / 'trials.json'}; summary: {result.out / 'summary.json'}")
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``search`` to the ``pocketvision`` parser."""
    p = subparsers.add_parser(
        "search",
        help="find the most accurate model under a size and latency budget (Optuna)",
        description=(
            "Search registered models x width x resolution x recipe with Optuna. Budgets are "
            "checked on the real artefact before any training (params; the --runtime file at "
            "--precision, its bytes and its batch-1 latency on this machine); feasible trials "
            "train as normal "
            "run folders. Re-running the same command resumes the study up to --trials."
        ),
    )
    p.add_argument("--data", required=True, help="any `pocketvision train --data` source")
    p.add_argument("--models", default="mobilenet*,shufflenet*",
                   help="comma list of shell patterns of registered names "
                   "(default 'mobilenet*,shufflenet*')")  # fmt: skip
    p.add_argument("--img-size", type=int, help="fix the input side (default: what data allows)")
    p.add_argument("--max-params", type=int, help="most parameters a model may have")
    p.add_argument("--max-size-kb", type=float,
                   help="largest deploy file in KB (1000 bytes): --runtime's at --precision")  # fmt: skip
    p.add_argument("--max-latency-ms", type=float,
                   help="slowest median batch-1 latency in --runtime on this machine")  # fmt: skip
    p.add_argument("--runtime", default="onnxruntime",
                   help=f"{' | '.join(SEARCH_RUNTIMES)} (default onnxruntime)")  # fmt: skip
    p.add_argument("--precision", default="fp32",
                   help=f"{' | '.join(BYTES_PER_PARAM)}: of the file sized and timed "
                   "(default fp32)")  # fmt: skip
    p.add_argument("--trials", type=int, default=20, help="the study's total (default 20)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per trial (default 3)")
    p.add_argument("--time-budget", help="stop starting trials after this long: 90s, 30m, 2h")
    p.add_argument("--storage", help="database URL or journal file (default OUT/study.journal)")
    p.add_argument("--study", default="search", help="study name (default search)")
    p.add_argument("--out", help="output folder (default runs/search-STUDY)")
    p.add_argument("--train-limit", type=int, help="train each trial on at most N images")
    p.add_argument("--batch-size", type=int, default=128, help="training batch (default 128)")
    p.add_argument("--threads", type=int, default=1, help="latency threads (default 1)")
    p.add_argument("--seed", type=int, help="seed the sampler and the training")
    p.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    p.set_defaults(func=_search)
