# The two commands a new user runs: `make demo` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= out
DATA ?= ../shared/data/lego
STAMP := .make/installed

.PHONY: install demo demo-llff demo-lego compare reproduce-lego test test-slow lint bench clean

# torch first, pinned to the local CPU wheel, so that the package's torch range
# installs nothing more (an unpinned torch would pull several GB of CUDA packages).
$(STAMP): pyproject.toml
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[dev,view,capture]"
	# the `nerfbaselines` extra without nerfbaselines' own requirements, which pin numpy<2 and add
	# opencv-python beside opencv-python-headless (docs/nerfbaselines.md); its test-method needs tensorboard.
	$(PIP) install -q --no-deps "nerfbaselines>=1.2,<1.3"
	$(PIP) install -q "tensorboard>=2.5,<3"
	@mkdir -p $(dir $(STAMP)) && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh $(OUT)

demo-llff: $(STAMP)
	bash scripts/demo_llff.sh $(OUT)

demo-lego: $(STAMP)
	bash scripts/demo_lego.sh $(DATA) $(OUT)

compare: $(STAMP)
	bash scripts/compare.sh $(OUT)

reproduce-lego: $(STAMP)
	bash scripts/reproduce_lego.sh $(DATA) $(OUT)

test: $(STAMP)
	$(PYTHON) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

test-slow: $(STAMP)
	$(PYTHON) -m pytest -q -m slow

bench: $(STAMP)
	$(PYTHON) -m mipnerf_cli bench --what all --config paper --markdown BENCHMARKS.md

clean:
	rm -rf $(OUT) .make .pytest_cache
