"""The Optuna study behind a search: its storage, its definition, and trials left behind.

Storage: by default Optuna's journal file ``OUT/study.journal`` (an append-only log with a file
lock, safe for several worker processes on one machine); ``--storage URL`` is any database
Optuna's RDB storage takes (``postgresql+psycopg://...``, ``sqlite:///...``), for workers on
several machines; ``--storage PATH`` another journal file.

The study keeps its definition (search space, data, epochs, budgets) as a user attribute, so a
re-run with another definition is refused before it touches the study. Each trial records the
host and process running it: a RUNNING trial of a process that is gone (killed) is marked
FAIL on the next start; on an RDB storage Optuna's heartbeat also fails trials of dead
workers on other machines.
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import time
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from pocketvision.console import captured
from pocketvision.errors import PocketvisionError

JOURNAL = "study.journal"
DEFINITION = "pocketvision.search"
DIRECTIONS: tuple[Literal["maximize", "minimize"], ...] = ("maximize", "minimize", "minimize")
# the objectives: accuracy, latency_ms, size_bytes
HEARTBEAT_S = 30
GRACE_S = 120
SCHEMA_TRIES = 8  # attempts while workers started together race to create the tables
# what a worker counts toward --trials: finished trials and those running now (FAIL is redone)
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(storage: str | None, out: Path) -> BaseStorage:
    """The study's storage: a journal file in ``out``, a journal PATH or a database URL.

    Raises:
        PocketvisionError: The database cannot be reached (one line, password hidden).
    """
    if storage is None or "://" not in storage:
        path = out / JOURNAL if storage is None else Path(storage).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine: dict[str, Any] = {}
    if storage.startswith("postgresql"):
        engine = {"connect_args": {"connect_timeout": 10}}
    try:
        return _rdb_storage(storage, engine)
    except Exception as err:  # sqlalchemy's errors: no server, bad credentials, no driver
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PocketvisionError(
            f"--storage {_redacted(storage)}: cannot open ({type(err).__name__}: {text[:200]})"
        ) from None


def _rdb_storage(storage: str, engine: dict[str, Any], tries: int = SCHEMA_TRIES) -> RDBStorage:
    """RDBStorage, retried while another worker creates the same schema at the same moment.

    Workers started together on several machines all find an empty database and all run
    ``CREATE TABLE``; the losers get an IntegrityError (PostgreSQL's ``pg_type`` unique index)
    or a "relation already exists" error. Once the winner has committed, a retry finds the
    tables and goes on.
    """
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(tries):
        try:
            with captured():  # Optuna's ExperimentalWarning for the heartbeat, SQLAlchemy's logs
                return RDBStorage(
                    storage,
                    engine_kwargs=engine,
                    heartbeat_interval=HEARTBEAT_S,
                    grace_period=GRACE_S,
                )
        except (IntegrityError, ProgrammingError):
            if attempt == tries - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.3)
    raise AssertionError("unreachable")


def _first_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key} was {json.dumps(old.get(key))}, now {json.dumps(new.get(key))}"
    return ""


def open_study(
    storage: BaseStorage, name: str, definition: dict[str, Any], sampler: Any
) -> optuna.Study:
    """Create the study or load it; refuse one whose recorded definition differs.

    Raises:
        PocketvisionError: The study exists with another definition or other objectives.
    """
    definition = json.loads(json.dumps(definition))  # tuples -> lists, as stored
    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except KeyError:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            directions=list(DIRECTIONS),
            load_if_exists=True,  # another worker may create it at the same moment
        )
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise PocketvisionError(f"--study {name}: exists and is not a pocketvision search")
    recorded = study.user_attrs.get(DEFINITION)
    if recorded is None:
        study.set_user_attr(DEFINITION, definition)
    elif recorded != definition:
        raise PocketvisionError(
            f"--study {name}: exists with another search ({_first_difference(recorded, definition)})"
            "; use another --study or the same settings"
        )
    return study


def worker_attrs() -> dict[str, Any]:
    """Who runs a trial: recorded on the trial so a later start can tell it was killed."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def is_dead(trial: FrozenTrial) -> bool:
    """A RUNNING trial whose process on this host is gone."""
    attrs = trial.user_attrs
    if trial.state != TrialState.RUNNING or attrs.get("host") != socket.gethostname():
        return False
    pid = attrs.get("pid")
    return isinstance(pid, int) and pid != os.getpid() and not _alive(pid)


def fail_dead_trials(study: optuna.Study, twin: optuna.Study | None = None) -> list[int]:
    """Mark every dead RUNNING trial FAIL (and its pruning twin); return their numbers."""
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_dead(trial):
            continue
        # FrozenTrial has no public id; _trial_id is what Optuna's own fail_stale_trials uses
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        failed.append(trial.number)
        twin_number = trial.user_attrs.get("prune_trial")
        if twin is not None and isinstance(twin_number, int):
            for t in twin.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if t.number == twin_number:
                    twin._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return failed


def counted(study: optuna.Study) -> int:
    """Trials that count toward ``--trials``: complete, pruned (infeasible too) or running."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))
