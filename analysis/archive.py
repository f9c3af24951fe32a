"""A reference report's raw runs, kept as one archive beside it.

``results/reference/<name>/runs.tar.gz`` holds the small files of the runs behind the report
(``scripts/pack_runs.sh``: no checkpoints; the folders as they lay under ``results/``, e.g.
``protocol/`` and ``tune/``). Regenerating the report in place reads its runs from there: the
folder its provenance line names (``From `results/protocol```) is unpacked into a temporary
directory and collected as a fresh report would. So files derivable from the runs, such as the
meta-training logs (``training.csv``), need not be committed, and ``make reference-runs``
unpacks the same archive where sweeps find its runs done.
"""
from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARCHIVE = "runs.tar.gz"


class ArchiveError(ValueError):
    """The archive is unreadable, or lacks the folder the report was made from."""


@contextmanager
def unpacked(report: Path, source: str) -> Iterator[Path | None]:
    """The results folder ``source`` (e.g. ``results/protocol``) as unpacked from
    ``report/runs.tar.gz`` into a temporary directory, removed on exit; None without an archive."""
    archive = report / ARCHIVE
    if not archive.exists():
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix=".runs-", dir=report.parent))
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ArchiveError(f"{archive} is unreadable: {e}") from e
        runs = tmp / Path(source).name
        if not runs.is_dir():
            held = ", ".join(sorted(p.name + "/" for p in tmp.iterdir())) or "nothing"
            raise ArchiveError(f"{archive} holds {held}, not {Path(source).name}/, the folder "
                               f"{report / 'summary.md'} says the report was made from ({source})")
        yield runs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
