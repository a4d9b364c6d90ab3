# `make serve` and `make test` do all set-up on a fresh machine (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.loragate-installed
INSTALL_INPUTS := pyproject.toml requirements/constraints-cpu.txt requirements/constraints-cuda.txt scripts/install.sh
PYTEST_ARGS ?=
ARGS ?=

.PHONY: install prepare-model serve test unit-test lint clean

install: $(STAMP)

# Reinstall only when the install inputs change.
$(STAMP): $(INSTALL_INPUTS)
	VENV=$(VENV) bash scripts/install.sh
	touch $@

prepare-model: install
	$(VENV)/bin/loragate prepare-model

# The project's trained adapters (adapters/ticket-triage, adapters/brand-voice) are registered
# at start when the store lacks them.
DEMO_ADAPTERS := {"ticket-triage": "ticket-triage", "brand-voice": "brand-voice"}

# Keyless on 127.0.0.1 (the service logs a warning that auth is off) unless keys are exported:
# LORAGATE_API_KEYS, LORAGATE_ADMIN_KEYS or their *_FILE forms turn authentication on (an
# exported LORAGATE_AUTH_DISABLED is left as it is).
SERVE_AUTH := $(if $(LORAGATE_AUTH_DISABLED)$(LORAGATE_API_KEYS)$(LORAGATE_ADMIN_KEYS)$(LORAGATE_API_KEYS_FILE)$(LORAGATE_ADMIN_KEYS_FILE),,LORAGATE_AUTH_DISABLED=true)

serve: prepare-model
	$(SERVE_AUTH) LORAGATE_INITIAL_ADAPTERS='$(DEMO_ADAPTERS)' $(VENV)/bin/loragate serve $(ARGS)

test: prepare-model
	VENV=$(VENV) bash scripts/install_test_tools.sh
	$(PY) -m pytest $(PYTEST_ARGS)

unit-test: install
	VENV=$(VENV) bash scripts/install_test_tools.sh
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
