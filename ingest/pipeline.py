"""Ingest files and folders: parse, store in batches, set bad input aside, report."""

from __future__ import annotations

import filecmp
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import SQLModel

from config.settings import IngestSettings
from ingest._read import FileContext, Overrides
from ingest.calls import ParsedCall
from ingest.errors import InputError
from ingest.formats import read_file
from ingest.mapping import ExportMapping, load_mapping
from ingest.save import CallOutcome, save_calls
from ingest.speakers import SpeakerResolver
from store.models import utcnow

logger = logging.getLogger(__name__)

_REJECTED_FILE: Table = SQLModel.metadata.tables["rejectedfile"]
REJECTED_DIR = "rejected"


@dataclass(frozen=True, slots=True)
class Rejection:
    """A file, or one record of it, set aside with the reason (naming line, field, turn)."""

    path: Path
    reason: str
    kind: str = "parse"
    line: int | None = None
    quarantined_to: Path | None = None
    """The copy under `data_dir/rejected/`, next to its `<name>.reason.txt`."""


@dataclass(slots=True)
class IngestReport:
    files: int = 0
    new: int = 0
    duplicate: int = 0
    rejections: list[Rejection] = field(default_factory=list)
    new_interaction_ids: list[int] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def all_failed(self) -> bool:
        """Nothing was stored or already there: every file failed, or none was found."""
        return self.new == 0 and self.duplicate == 0


def ingest_paths(
    engine: Engine,
    paths: Sequence[Path],
    *,
    settings: IngestSettings,
    data_dir: Path,
    mapping: ExportMapping | None = None,
    progress: Callable[[int, int], None] | None = None,
    rep: str | None = None,
    team: str | None = None,
    source: str | None = None,
    batch_size: int = 500,
) -> IngestReport:
    """Ingest transcript files and folders (recursively), idempotently and resumably.

    Calls are committed in batches of `batch_size`; stopping half-way and running again
    stores the rest and counts the stored ones as duplicates. A bad file or record never
    stops the run: it is copied to `data_dir/rejected/` with a `<name>.reason.txt`, recorded
    as a `RejectedFile` row, and listed in the report.

    Args:
        engine: A migrated database.
        paths: Files and folders; hidden files and `data_dir/rejected/` are skipped.
        settings: Speaker labels, size limit, what to do with unknown reps, mapping file.
        data_dir: Where `rejected/` goes.
        mapping: How to read other platforms' exports; None reads `settings.mapping_file`.
        progress: Called with (files done, files in total) after every file.
        rep: Rep for every call, over what files say (`--rep`).
        team: Team slug for every call (`--team`).
        source: Source name for every call instead of the format's (`--source`).
        batch_size: Calls per transaction.

    Returns:
        Counts of new, duplicate and rejected calls, and every rejection.

    Raises:
        MappingError: `settings.mapping_file` cannot be read.
    """
    if mapping is None and settings.mapping_file is not None:
        mapping = load_mapping(settings.mapping_file)
    speakers = SpeakerResolver(
        settings.agent_labels,
        settings.customer_labels,
        overrides=mapping.speakers if mapping else None,
        unknown=mapping.unknown_speaker if mapping else "reject",
    )
    overrides = Overrides(rep=rep, team=team, source=source)
    writer = _Writer(engine, settings, data_dir / REJECTED_DIR)
    files, missing = discover(paths, skip=data_dir / REJECTED_DIR)
    writer.report.files = len(files)
    batch = _Batch()
    for path in missing:
        batch.rejections.append(Rejection(path, "the path does not exist", kind="missing"))

    total = len(files)
    for done, path in enumerate(files, 1):
        ctx = FileContext(path=path, speakers=speakers, mapping=mapping, overrides=overrides)
        for item in read_file(path, ctx, settings.max_file_bytes):
            if isinstance(item, InputError):
                batch.rejections.append(Rejection(path, item.reason, item.kind, item.line))
            else:
                batch.calls.append(item)
                batch.origins.append(path)
            if len(batch.calls) + len(batch.rejections) >= batch_size:
                writer.flush(batch)
        if progress is not None:
            progress(done, total)
    writer.flush(batch)

    report = writer.report
    logger.info(
        "ingest finished",
        extra={
            "files": report.files,
            "new": report.new,
            "duplicate": report.duplicate,
            "rejected": report.rejected,
        },
    )
    return report


def discover(paths: Sequence[Path], *, skip: Path) -> tuple[list[Path], list[Path]]:
    """(files to read, paths that do not exist), folders walked in name order."""
    skip_abs = os.path.abspath(skip)
    files: list[Path] = []
    missing: list[Path] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            files.append(path)

    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(
                    d
                    for d in dirs
                    if not d.startswith(".") and os.path.abspath(os.path.join(root, d)) != skip_abs
                )
                for name in sorted(names):
                    if not name.startswith(".") and not name.endswith(".reason.txt"):
                        add(Path(root, name))
        elif path.is_file():
            add(path)
        else:
            missing.append(path)
    return files, missing


@dataclass(slots=True)
class _Batch:
    calls: list[ParsedCall] = field(default_factory=list)
    origins: list[Path] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def clear(self) -> None:
        self.calls.clear()
        self.origins.clear()
        self.rejections.clear()


class _Writer:
    """Commits batches: calls, their rejections and the quarantine copies together."""

    def __init__(self, engine: Engine, settings: IngestSettings, quarantine: Path) -> None:
        self._engine = engine
        self._unknown_reps = settings.unknown_reps
        self._quarantine = quarantine
        self._copies: dict[Path, Path | None] = {}
        self._reasons_written: set[Path] = set()
        self.report = IngestReport()

    def flush(self, batch: _Batch) -> None:
        if not batch.calls and not batch.rejections:
            return
        try:
            with self._engine.begin() as conn:
                saved = save_calls(conn, batch.calls, unknown_reps=self._unknown_reps)
                outcomes = saved.outcomes
                recorded = self._set_aside(conn, batch, outcomes, batch.rejections)
        except (IntegrityError, DataError):
            # A concurrent writer stored some of these calls, or one value did not fit:
            # go file by file so the rest still gets in.
            logger.warning(
                "batch refused; retrying file by file", extra={"calls": len(batch.calls)}
            )
            outcomes, recorded = self._flush_each_file(batch)
        self._write_reasons(recorded)
        self._count(outcomes, recorded)
        batch.clear()

    def _flush_each_file(self, batch: _Batch) -> tuple[list[CallOutcome], list[Rejection]]:
        outcomes: list[CallOutcome] = []
        recorded: list[Rejection] = []
        refused: list[Rejection] = list(batch.rejections)
        by_file: dict[Path, _Batch] = {}
        for call, path in zip(batch.calls, batch.origins, strict=True):
            one = by_file.setdefault(path, _Batch())
            one.calls.append(call)
            one.origins.append(path)
        for path, one in by_file.items():
            try:
                with self._engine.begin() as conn:
                    file_outcomes = save_calls(
                        conn, one.calls, unknown_reps=self._unknown_reps
                    ).outcomes
                    recorded.extend(self._set_aside(conn, one, file_outcomes, []))
                outcomes.extend(file_outcomes)
            except (IntegrityError, DataError) as exc:
                reason = f"the database refused it ({type(exc.orig).__name__}); check the values"
                refused.append(Rejection(path, reason, kind="database"))
        with self._engine.begin() as conn:
            recorded.extend(self._set_aside(conn, _Batch(), [], refused))
        return outcomes, recorded

    def _set_aside(
        self,
        conn: Connection,
        batch: _Batch,
        outcomes: list[CallOutcome],
        parse_rejections: list[Rejection],
    ) -> list[Rejection]:
        """Copy rejected files to quarantine and record them, in the batch's transaction."""
        rejections = list(parse_rejections)
        for outcome, path in zip(outcomes, batch.origins, strict=True):
            if outcome.status == "rejected":
                reason = outcome.reason or "rejected"
                rejections.append(Rejection(path, reason, outcome.kind or "database"))
        if not rejections:
            return []
        recorded: list[Rejection] = []
        rows: list[dict[str, Any]] = []
        now = utcnow()
        for r in rejections:
            if r.path not in self._copies:
                self._copies[r.path] = self._copy_file(r.path)
            copy = self._copies[r.path]
            recorded.append(Rejection(r.path, r.reason, r.kind, r.line, quarantined_to=copy))
            rows.append(
                {
                    "path": str(r.path),
                    "reason": r.reason,
                    "quarantined_to": None if copy is None else str(copy),
                    "created_at": now,
                }
            )
        conn.execute(insert(_REJECTED_FILE), rows)
        return recorded

    def _write_reasons(self, recorded: list[Rejection]) -> None:
        """After the commit: `<name>.reason.txt` beside each copy, one reason per line."""
        for r in recorded:
            logger.warning(
                "input set aside",
                extra={
                    "kind": r.kind,
                    "line": r.line,
                    "pii.path": str(r.path),
                    "pii.reason": r.reason,
                },
            )
            if r.quarantined_to is None:
                continue
            reason_file = r.quarantined_to.with_name(r.quarantined_to.name + ".reason.txt")
            first = r.quarantined_to not in self._reasons_written
            self._reasons_written.add(r.quarantined_to)
            try:
                with reason_file.open("w" if first else "a", encoding="utf-8") as out:
                    if first:
                        out.write(f"{r.path}\n")
                    out.write(f"{r.reason}\n")
            except OSError as exc:
                logger.error("reason file not written", extra={"error": exc.strerror})

    def _copy_file(self, path: Path) -> Path | None:
        if not path.is_file():
            return None
        try:
            self._quarantine.mkdir(parents=True, exist_ok=True)
            target = self._quarantine / path.name
            n = 1
            while target.exists():
                if filecmp.cmp(path, target, shallow=False):
                    return target
                target = self._quarantine / f"{path.stem}-{n}{path.suffix}"
                n += 1
            shutil.copyfile(path, target)
        except OSError as exc:
            logger.error("file not copied to quarantine", extra={"error": exc.strerror})
            return None
        return target

    def _count(self, outcomes: list[CallOutcome], rejections: list[Rejection]) -> None:
        for outcome in outcomes:
            if outcome.status == "new" and outcome.interaction_id is not None:
                self.report.new += 1
                self.report.new_interaction_ids.append(outcome.interaction_id)
            elif outcome.status == "duplicate":
                self.report.duplicate += 1
        self.report.rejections.extend(rejections)
