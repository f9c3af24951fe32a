#!/usr/bin/env bash
# Pack the small files of finished runs into one deterministic archive (same runs, same bytes):
#   scripts/pack_runs.sh ARCHIVE ROOT DIR...     e.g. scripts/pack_runs.sh runs.tar.gz results tune protocol
# Takes, under ROOT/DIR..., each run folder holding `done` or `diverged` (config.yaml, summary.json,
# metrics.jsonl, metatest.jsonl and the marker; no checkpoints) and every selected/<suite>/*.yaml.
# `make reference-runs` unpacks the committed archives into results/, where sweeps find them done.
set -euo pipefail
archive=$(realpath -m "$1"); root=$2; shift 2
trap 'rm -f "$archive.tmp"' EXIT  # nothing half-written when a step fails (e.g. a DIR that is not there)
cd "$root"
{
  find "$@" -type f \( -name done -o -name diverged \) -printf '%h\n' | sort -u | while read -r run; do
    for f in config.yaml summary.json metrics.jsonl metatest.jsonl done diverged; do
      if [ -f "$run/$f" ]; then echo "$run/$f"; fi
    done
  done
  find "$@" -path '*/selected/*' -name '*.yaml' -type f
} | LC_ALL=C sort | tar --owner=0 --group=0 --numeric-owner --mtime=@0 --mode=a+rX,go-w -cf - -T - \
  | gzip -n -9 > "$archive.tmp"
mv "$archive.tmp" "$archive"
echo "$archive: $(tar -tzf "$archive" | grep -c '/done$') done runs, $(tar -tzf "$archive" | grep -c '/diverged$') diverged, $(tar -tzf "$archive" | grep -c '/selected/') selection files"
