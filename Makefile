# emseg-lite: `make train export` trains and exports the membrane model; `make test` runs the tests;
# `make finetune IMAGES=... LABELS=... RUN=runs/mine` then `make export RUN=runs/mine MODELS=models/mine`
# adapts the shipped model to a lab's own labelled sections.
# A fresh machine needs only Python 3.11 and make: the first target creates .venv.
# `make bioimageio` packages the shipped model for the bioimage.io Model Zoo and tests the zip;
# `make check-aarch64` runs the slim runtime on Linux aarch64 under qemu (root, slow).

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
# The shipped model's float weights (full Keras model + its keras card beside it), the int8 model
# they must have been trained with, and the pixel size of DATA (ISBI 2012: 4 x 4 nm; set it
# together with DATA), which make train records in the card.
SHIPPED       ?= runtime/models/emseg-keras.keras
SHIPPED_INT8  ?= runtime/models/emseg-int8.json
SHIPPED_OUT   ?= $(MODELS)/shipped
PIXEL_SIZE_NM ?= 4
# make finetune-study: fib-gala, fine-tuned on 5 train sections, scored on its test volume
FIB_GALA      ?= $(EMSEG_DATA)/fib-gala
# make carryover-study: a clone of github.com/janelia-flyem/neuroproof_examples (not in the shared data)
NEUROPROOF    ?=
ZIP           ?= $(SHIPPED_OUT)/emseg.bioimageio.zip
# bioimageio.core with TensorFlow/Keras 3 and onnxruntime, apart from .venv's tf-keras
ZOO_VENV      ?= .venv-bioimageio
ZOO_STAMP     := $(ZOO_VENV)/.installed
# the slim runtime with the oldest ai-edge-litert that pyproject.toml allows
MIN_VENV      ?= .venv-litert-min
MIN_STAMP     := $(MIN_VENV)/.installed
# Mesa's software Vulkan (lavapipe) in a private folder: the GPU route's tests run on it
VULKAN        ?= .vulkan

export EMSEG_DATA

.PHONY: gpu-variant train finetune finetune-study objects-study objects-pool objects-scale carryover-study export embed bioimageio check-bioimageio check-litert-min check-aarch64 lint display software-vulkan test bench bench-big bench-gpu pixel-size-study clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[train,bioimageio,test,volume,formats,napari]"
	touch $@

$(MIN_STAMP): pyproject.toml tests/lower_bound.py
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -e . pytest scipy "$$($(PYTHON) tests/lower_bound.py ai-edge-litert)"
	touch $@

$(ZOO_STAMP): tests/bioimageio-requirements.txt
	rm -rf $(ZOO_VENV)
	$(PYTHON) -m venv $(ZOO_VENV)
	$(ZOO_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(ZOO_VENV)/bin/python -m pip install --quiet -r tests/bioimageio-requirements.txt
	touch $@

train: $(STAMP)  ## train the U-Net (float, then QAT) into $(RUN)
	$(BIN)/python -m emseg_lite.train --data $(DATA) --out $(RUN) --preset $(PRESET) --pixel-size-nm $(PIXEL_SIZE_NM)

finetune: $(STAMP)  ## fine-tune the shipped model on IMAGES + LABELS (a lab's own sections) into $(RUN)
	@test -n "$(IMAGES)" -a -n "$(LABELS)" || { echo "usage: make finetune IMAGES=stack.tif LABELS=labels.tif RUN=runs/mine" >&2; exit 2; }
	$(BIN)/python -m emseg_lite.train.finetune --images $(IMAGES) --labels $(LABELS) --out $(RUN) $(FINETUNE)


export: $(STAMP)  ## convert $(RUN) to TFLite int8 / float16 / float32 and a bioimage.io zip in $(MODELS)
	$(BIN)/python -m emseg_lite.export $(RUN) --out $(MODELS)

bioimageio: $(STAMP)  ## package the shipped model's float weights ($(SHIPPED)) as $(ZIP), then test it
	$(BIN)/python -m emseg_lite.export.bioimageio $(SHIPPED) --out $(SHIPPED_OUT) \
		--float-model-of $(SHIPPED_INT8) --pixel-size-nm $(PIXEL_SIZE_NM) --data $(DATA)
	$(MAKE) check-bioimageio ZIP=$(ZIP)

check-bioimageio: $(ZOO_STAMP)  ## `bioimageio test` on $(ZIP), both weight formats, in $(ZOO_VENV)
	@# in a scratch folder: bioimageio.core unzips SavedModels into the working directory
	work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && cd "$$work" && \
	for format in onnx tensorflow_saved_model_bundle; do \
		env -u TF_USE_LEGACY_KERAS $(abspath $(ZOO_VENV))/bin/bioimageio test $(abspath $(ZIP)) \
			--weight-format $$format || exit 1; \
	done

check-litert-min: $(MIN_STAMP)  ## the runtime's tests, embedded models included, on the oldest ai-edge-litert allowed
	$(MIN_VENV)/bin/python -c "import importlib.metadata as m; print('ai-edge-litert', m.version('ai-edge-litert'), '+ numpy', m.version('numpy'))"
	$(MIN_VENV)/bin/python -m pytest tests --runtime-only -p no:cacheprovider -q --ignore=tests/test_install.py

check-aarch64: $(STAMP)  ## the slim runtime on aarch64 under qemu-user, masks compared with x86-64 (root)
	bash tests/check_aarch64.sh

gpu-variant: $(STAMP)  ## float16 on 2048-px GPU tiles from the shipped Keras model (gated like int8), shipped in runtime/models
	work=$$(mktemp -d) && trap 'rm -rf "$$work"' EXIT && cp $(SHIPPED) $$work/ && cp $(SHIPPED:.keras=.json) $$work/card.json && \
	$(BIN)/python -m emseg_lite.export $$work --out $$work/out --variant float16-2048 && \
	$(BIN)/python -c "$$NAME_SHIPPED_FULL_MODEL" $$work/out/emseg-float16-2048.json $(SHIPPED:.keras=.json) && \
	cp $$work/out/emseg-float16-2048.tflite $$work/out/emseg-float16-2048.json runtime/models/

# export re-saves the full model it converted from (another sha256 for the same weights): the
# card names the shipped file instead, which fine-tuning from this variant then finds.
define NAME_SHIPPED_FULL_MODEL
import dataclasses, sys
from emseg_lite.runtime.core.card import ModelCard
card = ModelCard.load(sys.argv[1])
dataclasses.replace(card, full_model=ModelCard.load(sys.argv[2]).model).save(sys.argv[1])
endef
export NAME_SHIPPED_FULL_MODEL

embed:  ## ship the exported int8, float16 and float32 models, and their float Keras model, inside the package
	cp $(foreach v,int8 float16 float16-2048 float32,$(MODELS)/emseg-$(v).tflite $(MODELS)/emseg-$(v).json) \
	   $(MODELS)/emseg-keras.keras $(MODELS)/emseg-keras.json runtime/models/

lint: $(STAMP)  ## ruff (imports sorted, no unused or undefined names) over the whole tree
	$(BIN)/ruff check .

# What Qt needs to open windows on Xvfb, Debian's virtual X display (pytest-xvfb starts it)
QT_DEBS := xvfb libgl1 libegl1 libfontconfig1 libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 \
	libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0

display:  ## Xvfb and Qt's libraries for the napari plugin's tests (apt-get, as root; nothing where Xvfb exists or a display is set)
	@[ -n "$$DISPLAY" ] || command -v Xvfb >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $(QT_DEBS); }

software-vulkan: $(VULKAN)/env.sh  ## lavapipe from bookworm-backports in $(VULKAN) (apt download + dpkg -x; system untouched)

$(VULKAN)/env.sh: tests/software_vulkan.sh
	bash tests/software_vulkan.sh $(VULKAN)

test: lint display software-vulkan $(ZOO_STAMP)  ## lint, unit + integration tests, the oldest LiteRT, then the benchmarks in quick mode
	EMSEG_VULKAN=$(abspath $(VULKAN)) $(BIN)/python -m pytest tests --ignore=tests/test_napari.py
	$(BIN)/python -m pytest tests/test_napari.py  # a process without TensorFlow: see the module's docstring
	$(MAKE) check-litert-min
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-min-rounds=1 --benchmark-max-time=0.05 --benchmark-warmup=off

bench: $(STAMP)  ## full benchmarks: JSON, markdown table and plot in benchmarks/results/
	mkdir -p benchmarks/results
	EMSEG_VOLUME_ROUNDS=3 $(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-json=benchmarks/results/latest.json
	$(BIN)/python -m benchmarks.report benchmarks/results/latest.json --out benchmarks/results
	$(BIN)/python -m benchmarks.figure --out benchmarks/results

bench-big: $(STAMP)  ## 20000 and 30000 px sections end to end, 5 paired rounds (~20 min): benchmarks/results/big_sections.*
	mkdir -p benchmarks/results
	EMSEG_BIG_SIDES=20000,30000 EMSEG_BIG_ROUNDS=5 $(BIN)/python -m pytest benchmarks/test_big_sections.py --benchmark-only \
		--benchmark-json=benchmarks/results/big_sections.json
	$(BIN)/python -m benchmarks.report benchmarks/results/big_sections.json --out benchmarks/results --name big_sections

bench-gpu: $(STAMP)  ## on a machine with a GPU: latency per variant, inference alone on a 4096 px section (GPU and CPU), then a 20000 px mosaic end to end with float16 and float16-2048
	$(BIN)/python -m pytest benchmarks/test_latency.py -k "gpu or big_section" --benchmark-only -rs -s
	for model in float16 float16-2048; do EMSEG_BIG_SIDES=20000 EMSEG_BIG_ACCELERATOR=gpu EMSEG_BIG_MODEL=$$model \
		$(BIN)/python -m pytest benchmarks/test_big_sections.py --benchmark-only -s -k watershed || exit 1; done

pixel-size-study: $(STAMP)  ## does --resample help? ISBI re-imaged at 2.67-8 nm, fib-gala at assumed sizes (~2 min): docs/pixel-size.md
	$(BIN)/python -m benchmarks.pixel_size_study $(EMSEG_DATA)

finetune-study: $(STAMP)  ## the fine-tuning figures of docs/finetune-recipe.md: fib-gala, 5 train sections -> int8, scored beside zero-shot on the test volume (~4 min)
	$(MAKE) finetune IMAGES=$(FIB_GALA)/train-volume.tif LABELS=$(FIB_GALA)/train-labels.tif RUN=runs/fib-gala \
		FINETUNE="--sections 0,12,24,36,48"
	$(MAKE) export RUN=runs/fib-gala MODELS=models/fib-gala
	$(BIN)/python -m benchmarks.finetune_study $(FIB_GALA)/test-volume.tif $(FIB_GALA)/test-labels.tif models/fib-gala

objects-study: $(STAMP)  ## 3-D objects on fib-gala: chosen on the train volume, scored on the test volume (~3 min, after finetune-study): benchmarks/results/objects.*
	@test -f models/fib-gala/emseg-int8.tflite || { echo "run make finetune-study first (models/fib-gala)" >&2; exit 2; }
	$(BIN)/python -m benchmarks.objects_study $(FIB_GALA) models/fib-gala benchmarks/results

objects-pool: $(STAMP)  ## the working pixel of objects on serial sections, by measurement on ISBI 2012's 30 labelled sections (~1 min): benchmarks/results/objects_pool.*
	$(BIN)/python -m benchmarks.objects_pool $(EMSEG_DATA) benchmarks/results

objects-scale: $(STAMP)  ## objects at a lab's scale: 100 x 4096² from vnc-stack2 through volume --neurons, 2 workers, then resumed after kill -9 (~7 min): benchmarks/results/objects_scale.*
	$(BIN)/python -m benchmarks.objects_scale $(EMSEG_DATA) benchmarks/results

carryover-study: $(STAMP)  ## the same recipe, unchanged, on a volume it never saw: NEUROPROOF=a clone of janelia-flyem/neuroproof_examples (~4 min)
	@test -d "$(NEUROPROOF)" || { echo "usage: make carryover-study NEUROPROOF=path/to/neuroproof_examples" >&2; exit 2; }
	$(BIN)/python -m benchmarks.neuroproof $(NEUROPROOF) runs/neuroproof-data
	$(MAKE) finetune IMAGES=runs/neuroproof-data/labelled-images.tif LABELS=runs/neuroproof-data/labelled-labels.tif \
		RUN=runs/neuroproof FINETUNE="--sections 0,12,24,36,48"
	$(MAKE) export RUN=runs/neuroproof MODELS=models/neuroproof
	$(BIN)/python -m benchmarks.finetune_study runs/neuroproof-data/test-images.tif runs/neuroproof-data/test-labels.tif models/neuroproof

clean:
	rm -rf $(VENV) $(ZOO_VENV) $(MIN_VENV) .pytest_cache .benchmarks emseg_lite.egg-info build
