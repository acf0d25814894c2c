# emseg-lite: `make train export` trains and exports the membrane model; `make test` runs the tests;
# `make finetune IMAGES=... LABELS=... RUN=runs/mine` then `make export RUN=runs/mine MODELS=models/mine`
# adapts the shipped model to a lab's own labelled sections.
# A fresh machine needs only Python 3.11 and make: the first target creates .venv.

PYTHON     ?= $(shell command -v python3.11 || command -v python3)
VENV       ?= .venv
DATA       ?= $(or $(EMSEG_DATA),../shared/data)/isbi2012
RUN        ?= runs/latest
MODELS     ?= models
PRESET     ?= edge
EMSEG_DATA ?= $(wildcard ../shared/data)
IMAGES     ?=
LABELS     ?=
FINETUNE   ?=
# e.g. FINETUNE="--sections 0,12,24,36,48 --label-kind instances"
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

export EMSEG_DATA

.PHONY: train finetune export embed test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,test]"
	touch $@

train: $(STAMP)  ## train the U-Net (float, then QAT) into $(RUN)
	$(BIN)/python -m emseg_lite.train --data $(DATA) --out $(RUN) --preset $(PRESET)

finetune: $(STAMP)  ## fine-tune the shipped model on IMAGES + LABELS (a lab's own sections) into $(RUN)
	@test -n "$(IMAGES)" -a -n "$(LABELS)" || { echo "usage: make finetune IMAGES=stack.tif LABELS=labels.tif RUN=runs/mine" >&2; exit 2; }
	$(BIN)/python -m emseg_lite.train.finetune --images $(IMAGES) --labels $(LABELS) --out $(RUN) $(FINETUNE)

export: $(STAMP)  ## convert $(RUN) to TFLite int8 / float16 / float32 in $(MODELS)
	$(BIN)/python -m emseg_lite.export $(RUN) --out $(MODELS)

embed:  ## ship the exported int8, float16 and float32 models, and their float Keras model, inside the package
	cp $(foreach v,int8 float16 float32,$(MODELS)/emseg-$(v).tflite $(MODELS)/emseg-$(v).json) \
	   $(MODELS)/emseg-keras.keras $(MODELS)/emseg-keras.json runtime/models/

test: $(STAMP)  ## unit + integration tests, then the benchmarks in quick mode
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-min-rounds=1 --benchmark-max-time=0.05 --benchmark-warmup=off

bench: $(STAMP)  ## full benchmarks: JSON, markdown table and plot in benchmarks/results/
	mkdir -p benchmarks/results
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.report benchmarks/results/latest.json --out benchmarks/results
	$(BIN)/python -m benchmarks.figure --out benchmarks/results

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks emseg_lite.egg-info
