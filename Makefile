# sigprop: `make book` (default) and `make test` bootstrap .venv themselves and are safe to rerun.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= book
BOOKFLAGS ?=

.PHONY: book test derive figures bench clean venv

book: $(STAMP)
	@# executed pages are cached per profile: a build under another profile starts clean
	@if [ -d book/_build ] && [ "$$(cat book/_build/.profile 2>/dev/null)" != "$(PROFILE)" ]; then \
		echo "profile changed to $(PROFILE): clearing book/_build"; rm -rf book/_build; fi
	@mkdir -p book/_build && echo $(PROFILE) > book/_build/.profile
	SIGPROP_PROFILE=$(PROFILE) $(VENV)/bin/jupyter-book build book $(BOOKFLAGS)
	@echo "Book built: $(CURDIR)/book/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest $(PYTESTFLAGS)

derive: $(STAMP)
	$(VENV)/bin/sigprop derive

figures: $(STAMP)
	$(VENV)/bin/sigprop figures --profile $(PROFILE)

bench: $(STAMP)
	$(VENV)/bin/sigprop bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[book,test,dask]'
	-$(PY) -m pip install --quiet 'torch==2.13.0' || echo "PyTorch not installable here: sigprop bench will skip it"
	touch $(STAMP)

clean:
	rm -rf book/_build figures
