# Fresh machine: `make demo` (train + evaluate on the bundled data) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install docs clean

# requirements.txt pins the exact versions (a constraints file); pyproject.toml declares the ranges
$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c requirements.txt -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The documentation site (mkdocs.yml, docs/) into site/: the `docs` extra on top of the install.
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c requirements.txt -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

RUNS := $(CURDIR)/runs/demo

demo: $(STAMP)
	$(PY) train.py project=$(RUNS) name=train exist_ok=True
	$(PY) test.py model=$(RUNS)/train/weights/best.pt project=$(RUNS) name=test exist_ok=True energy=True

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs site
