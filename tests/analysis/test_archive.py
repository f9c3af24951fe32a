"""A reference report regenerates from the raw runs archived beside it (runs.tar.gz), with no
file derivable from them committed: byte-identical for every committed reference, and a
damaged or mismatched archive is named, exit 2, the report left as it was."""
from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from analysis.report import main
from helpers import ROOT

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from make_runs import make_run  # noqa: E402

REFERENCES = sorted(p.parent.name for p in (ROOT / "results" / "reference").glob("*/runs.tar.gz"))


def committed(name: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", f"results/reference/{name}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [Path(f).name for f in out]


@pytest.mark.slow
@pytest.mark.parametrize("name", REFERENCES)
def test_a_committed_reference_regenerates_byte_identically_from_its_archive(name, tmp_path):
    """Only the committed files and the archive are copied: training.csv, derivable from the runs,
    is not committed, and comes back from the archive with everything else."""
    files = committed(name)
    assert "runs.tar.gz" in files and "training.csv" not in files
    copy = tmp_path / name
    copy.mkdir()
    for f in files:
        shutil.copy2(ROOT / "results" / "reference" / name / f, copy / f)
    assert main([str(copy)]) == 0
    differ = [f for f in files if not filecmp.cmp(copy / f, ROOT / "results" / "reference" / name / f, shallow=False)]
    assert differ == [], f"{name}: regenerated from runs.tar.gz, these differ from the committed files: {differ}"
    assert (copy / "training.csv").stat().st_size > 0


def test_a_mismatched_or_damaged_archive_is_named_and_the_report_kept(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_run(Path("results"), 0)
    assert main(["results", "--out", "ref"]) == 0
    before = sorted(p.name for p in Path("ref").iterdir())
    with tarfile.open("ref/runs.tar.gz", "w:gz") as tar:
        tar.add("results", arcname="elsewhere")
    assert main(["ref"]) == 2
    err = capsys.readouterr().err
    assert "holds elsewhere/, not results/" in err and "summary.md" in err
    Path("ref/runs.tar.gz").write_bytes(b"not a tar file")
    assert main(["ref"]) == 2
    assert "runs.tar.gz is unreadable" in capsys.readouterr().err
    assert sorted(p.name for p in Path("ref").iterdir()) == sorted(before + ["runs.tar.gz"])
    assert not list(tmp_path.glob(".runs-*"))  # nothing unpacked left behind
