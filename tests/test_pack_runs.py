"""scripts/pack_runs.sh: finished runs only, small files only, the same bytes every time."""
import subprocess
import tarfile

from helpers import ROOT


def test_pack_runs_takes_finished_runs_small_files_and_is_deterministic(tmp_path):
    root = tmp_path / "results"
    done, unfinished = root / "tune" / "glyphs" / "ours" / "aaa", root / "tune" / "glyphs" / "ours" / "bbb"
    for run in (done, unfinished):
        (run / "checkpoints").mkdir(parents=True)
        for name in ("config.yaml", "summary.json", "metrics.jsonl", "metatest.jsonl"):
            (run / name).write_text(name)
        (run / "checkpoints" / "phi_final.pt").write_bytes(b"big")
    (done / "done").write_text("")
    (root / "tune" / "selected" / "glyphs").mkdir(parents=True)
    (root / "tune" / "selected" / "glyphs" / "ours.yaml").write_text("method: ours\n")
    archives = [tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"]
    for archive in archives:
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "pack_runs.sh"), str(archive), str(root), "tune"],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "1 done runs, 0 diverged, 1 selection files" in proc.stdout
    assert archives[0].read_bytes() == archives[1].read_bytes()
    with tarfile.open(archives[0]) as tar:
        names = sorted(tar.getnames())
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    assert names == sorted([f"tune/glyphs/ours/aaa/{n}" for n in
                            ("config.yaml", "summary.json", "metrics.jsonl", "metatest.jsonl", "done")]
                           + ["tune/selected/glyphs/ours.yaml"])
    assert not (tmp_path / "a.tar.gz.tmp").exists()
