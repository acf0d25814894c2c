# emseg-lite: `make train export` trains and exports the membrane model; `make test` runs the tests.
# A fresh machine needs only Python 3.11 and make: the first target creates .venv.

PYTHON     ?= $(shell command -v python3.11 || command -v python3)
VENV       ?= .venv
DATA       ?= $(or $(EMSEG_DATA),../shared/data)/isbi2012
RUN        ?= runs/latest
MODELS     ?= models
PRESET     ?= edge
EMSEG_DATA ?= $(wildcard ../shared/data)
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.installed

export EMSEG_DATA

.PHONY: train export embed test bench bench-big clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,test,volume,formats]"
	touch $@

train: $(STAMP)  ## train the U-Net (float, then QAT) into $(RUN)
	$(BIN)/python -m emseg_lite.train --data $(DATA) --out $(RUN) --preset $(PRESET)

export: $(STAMP)  ## convert $(RUN) to TFLite int8 / float16 / float32 in $(MODELS)
	$(BIN)/python -m emseg_lite.export $(RUN) --out $(MODELS)

embed:  ## ship the exported int8, float16 and float32 models inside the package
	cp $(foreach v,int8 float16 float32,$(MODELS)/emseg-$(v).tflite $(MODELS)/emseg-$(v).json) runtime/models/

test: $(STAMP)  ## unit + integration tests, then the benchmarks in quick mode
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-min-rounds=1 --benchmark-max-time=0.05 --benchmark-warmup=off

bench: $(STAMP)  ## full benchmarks: JSON, markdown table and plot in benchmarks/results/
	mkdir -p benchmarks/results
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.report benchmarks/results/latest.json --out benchmarks/results
	$(BIN)/python -m benchmarks.figure --out benchmarks/results

bench-big: $(STAMP)  ## 20000 and 30000 px sections end to end (~10 min): benchmarks/results/big_sections.*
	mkdir -p benchmarks/results
	EMSEG_BIG_SIDES=20000,30000 $(BIN)/python -m pytest benchmarks/test_big_sections.py --benchmark-only \
		--benchmark-json=benchmarks/results/big_sections.json
	$(BIN)/python -m benchmarks.report benchmarks/results/big_sections.json --out benchmarks/results --name big_sections

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks emseg_lite.egg-info
