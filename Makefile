# The two commands a new user needs:
#   make demo   set up .venv, then meta-train CTS on the embedded suite and meta-test it
#   make test   set up .venv (and the Debian packages the tests use, when root), then run every test
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lsml-installed

.PHONY: setup demo test test-fast system compare clean reference-runs

setup: $(STAMP)

# Re-runs only when the dependency list or the install scripts change; a second call is instant.
$(STAMP): pyproject.toml scripts/install_learn2learn.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	bash scripts/install_learn2learn.sh $(VENV)
	touch $(STAMP)

# Debian packages for the SLURM and LaTeX tests; skipped (those tests then skip) when not root.
system:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install_system.sh; \
	else echo "not root: skipping Debian packages (SLURM and pdflatex tests will skip)"; fi

# One thread, as results/reference/demo/output.txt was made: the thread count changes how CPU
# kernels round, so at the default (one per core) a rerun differs by up to about a point per target.
demo: setup
	$(PY) -m benchmark.run method=ours runner.threads=1

# Two pytest workers (pytest-xdist), one per core: most tests run one single-threaded
# process, so one worker left a core idle. worksteal balances the long tests.
test: setup system
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist worksteal --durations=15

test-fast: setup
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -n 2 --dist worksteal -m "not slow and not slurm"

# The committed reference runs (small files only, packed so that a user's results/ holds only the
# user's runs), unpacked where their sweeps, tunes and reports find them done (ignored by git):
# glyphs-long: results/long, results/long-tune; glyphs: results/tune, results/protocol.
reference-runs:
	for a in results/reference/*/runs.tar.gz; do tar -xzf $$a -C results; done

clean:
	rm -rf $(VENV) .pytest_cache
