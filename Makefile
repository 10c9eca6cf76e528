# openbsd.vmm: two entry points, `make demo` and `make test`; everything else is a step of theirs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

ROOT        := $(CURDIR)
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python
# BUILD: where the collection copy lives; give parallel work its own (make units BUILD=/tmp/b1).
BUILD       ?= $(ROOT)/.build
COLL_ROOT   := $(BUILD)/ansible_collections
COLL_DIR    := $(COLL_ROOT)/openbsd/vmm
SITE        = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PYVER       = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
LAB_BIN     := $(ROOT)/tests/lab/bin
ANSIBLE_TEST = cd $(COLL_DIR) && PATH=$(VENV)/bin:$$PATH $(VENV)/bin/ansible-test

.PHONY: help venv collection test-tools sanity units matrix lab-tests integration test demo bench clean release-check ee-check

help:
	@echo "make demo   - set up and run the demo against the lab"
	@echo "make test   - set up and run every test (sanity, units, lab, integration)"

$(VENV)/.installed: requirements.txt requirements-test.txt
	@py=$$(scripts/find-python) && echo "using $$py" && \
	  { [ -x $(PY) ] || $$py -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
	touch $@

venv: $(VENV)/.installed

# ansible-test wants the collection at .../ansible_collections/openbsd/vmm; its dependencies
# come from the `ansible` package installed in the venv. Re-run after every change (make does).
collection: venv
	@mkdir -p $(COLL_ROOT)/openbsd $(COLL_ROOT)/ansible $(COLL_ROOT)/community
	@# A copy, not a symlink: ansible-test resolves its working directory physically.
	@rm -rf $(COLL_DIR) && mkdir -p $(COLL_DIR)
	@git ls-files -co --exclude-standard -z | tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C $(COLL_DIR)
	@# Its own git index, or ansible-test would list files through the enclosing checkout (which ignores .build/).
	@cd $(COLL_DIR) && git init -q && git add -A
	@# ansible-test copies only the targets to a temp dir: tell them where the lab's executables are.
	@printf -- '---\nvmm_lab_bin: %s\n' "$(COLL_DIR)/tests/lab/bin" > $(COLL_DIR)/tests/integration/integration_config.yml
	@ln -sfn $(SITE)/ansible_collections/ansible/posix $(COLL_ROOT)/ansible/posix
	@ln -sfn $(SITE)/ansible_collections/community/general $(COLL_ROOT)/community/general
	@# ansible-test downloads a get-pip script for its venvs; offline we seed its cache with one using ensurepip.
	@pipver=$$($(PY) -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(type("P",(),{"version":"x"})())["pip"])') && \
	  mkdir -p $$HOME/.ansible/test/cache && \
	  cp scripts/get_pip_offline.py $$HOME/.ansible/test/cache/get_pip_$${pipver//./_}.py

test-tools:
	@missing=""; \
	  command -v qemu-img >/dev/null || missing="$$missing qemu-utils"; \
	  command -v dhcpd >/dev/null || [ -x /usr/sbin/dhcpd ] || missing="$$missing isc-dhcp-server"; \
	  command -v doas >/dev/null || missing="$$missing doas"; \
	  [ -x /usr/sbin/sshd ] || missing="$$missing openssh-server"; \
	  if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    policy=""; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; \
	    fi; \
	    status=0; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || status=$$?; \
	    [ -z "$$policy" ] || rm -f $$policy; \
	    exit $$status; \
	  fi

sanity: collection
	$(ANSIBLE_TEST) sanity --venv --python $(PYVER) --color no $(SANITY)

units: collection
	$(ANSIBLE_TEST) units --venv --python $(PYVER) --color no $(UNITS)

# Mutation testing (scripts/mutate.py), not part of `make test`: it takes long. MUTATE_MAX mutants sampled
# per file (0: all); MUTATE="--only plugins/module_utils/sizes.py -v" narrows it and lists the survivors.
MUTATE_MAX ?= 40
.PHONY: mutate
mutate: collection
	@mkdir -p benchmarks/results
	nice -n 10 $(PY) scripts/mutate.py --collection $(COLL_DIR) --max-per-file $(MUTATE_MAX) --out benchmarks/results/mutation.json $(MUTATE)

# The ansible-core releases meta/runtime.yml claims, each with the oldest Python it allows
# (core:python). `make matrix` runs, on each in its own venv under $(BUILD)/matrix with that release's
# ansible-test: the unit tests, ansible-test sanity (every test, no ignore file; MATRIX_SANITY="--test
# pylint" narrows it) and, on the oldest only, the integration targets MATRIX_TARGETS against the lab.
# MATRIX_STEPS picks among units, sanity and integration. `make test` runs it for all but the newest,
# whose sanity, units and integration run in the .venv (requirements.txt).
MATRIX         ?= 2.19.14:3.11 2.20.10:3.12 2.21.5:3.12
MATRIX_STEPS   ?= units sanity integration
# The lab (tests/lab/: the test harness, not Ansible content) is sanity-checked by the newest only: the
# pylint of 2.19 and 2.20 reads lab.py's `pid %d` of a running vmd as possibly None (2.21's does not).
MATRIX_SANITY  ?= --exclude tests/lab/
# module_defaults: the action group; vmm_vm_info: vmd's answers through vmctl; vmm_autoinstall: the action
# plugin (templating, hashing, passlib's consteq on a second run: what broke on 2.17 and 2.18).
MATRIX_TARGETS ?= module_defaults vmm_vm_info vmm_autoinstall

matrix: collection test-tools
	@oldest=$(firstword $(MATRIX)); for entry in $(MATRIX); do \
	  core=$${entry%%:*}; want=$${entry##*:}; venv=$(BUILD)/matrix/$$core; \
	  if [ ! -f $$venv/.installed ]; then \
	    py=$$(scripts/find-python $$want) && rm -rf $$venv && $$py -m venv $$venv && \
	    grep -vE '^ansible(-core)?==' requirements.txt > $$venv.req && \
	    $$venv/bin/python -m pip install --quiet --disable-pip-version-check "ansible-core==$$core" -r $$venv.req && \
	    touch $$venv/.installed; \
	  fi; \
	  pyver=$$($$venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	  pipver=$$($$venv/bin/python -c 'from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(type("P",(),{"version":"x"})())["pip"])') && \
	  cp scripts/get_pip_offline.py $$HOME/.ansible/test/cache/get_pip_$${pipver//./_}.py; \
	  atest="cd $(COLL_DIR) && PATH=$$venv/bin:$$PATH $$venv/bin/ansible-test"; \
	  case " $(MATRIX_STEPS) " in *" units "*) \
	    echo "== ansible-core $$core on Python $$pyver: units"; \
	    (eval "$$atest units --venv --python $$pyver --color no $(UNITS)");; esac; \
	  case " $(MATRIX_STEPS) " in *" sanity "*) \
	    echo "== ansible-core $$core on Python $$pyver: sanity $(MATRIX_SANITY)"; \
	    (eval "$$atest sanity --venv --python $$pyver --color no $(MATRIX_SANITY)");; esac; \
	  case " $(MATRIX_STEPS) " in *" integration "*) \
	    if [ "$$entry" = "$$oldest" ] && [ -n "$(strip $(MATRIX_TARGETS))" ]; then \
	      echo "== ansible-core $$core on Python $$pyver: integration $(MATRIX_TARGETS)"; \
	      (eval "$$atest integration --local --python $$pyver --color no $(MATRIX_TARGETS)"); \
	    fi;; esac; \
	done

# Release tools (ansible-builder, ansible-lint, antsibull-*) in their own venv: not needed by `make test`'s steps.
RELEASE_VENV := $(BUILD)/release-venv
$(RELEASE_VENV)/.installed: requirements.txt requirements-release.txt
	@py=$$(scripts/find-python) && { [ -x $(RELEASE_VENV)/bin/python ] || $$py -m venv $(RELEASE_VENV); }
	$(RELEASE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-release.txt
	touch $@

# ansible-builder alone (requirements-release.txt's pin) for scripts/check-ee, which `make test` runs.
EE_VENV := $(BUILD)/ee-venv
$(EE_VENV)/.installed: requirements-release.txt
	@py=$$(scripts/find-python) && { [ -x $(EE_VENV)/bin/python ] || $$py -m venv $(EE_VENV); }
	$(EE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$$(grep -E '^ansible-builder==' requirements-release.txt)"
	touch $@

# The execution environment without a container runtime: ansible-builder create on an image definition that
# installs the built collection, and the requirements the image gets from meta/execution-environment.yml.
ee-check: collection $(EE_VENV)/.installed
	PATH=$(VENV)/bin:$$PATH $(PY) scripts/check-ee --collection $(COLL_DIR) --requirements $(ROOT)/requirements.txt \
	  --builder $(EE_VENV)/bin/ansible-builder

# The artifact as a Galaxy user gets it: built, installed outside the repository, documented, run (scripts/release-check).
release-check: collection test-tools $(RELEASE_VENV)/.installed
	cd $(BUILD) && PATH=$(RELEASE_VENV)/bin:$$PATH $(RELEASE_VENV)/bin/python $(ROOT)/scripts/release-check \
	  --collection $(COLL_DIR) --work $(BUILD)/release --lab-bin $(COLL_DIR)/tests/lab/bin --requirements $(ROOT)/requirements.txt

lab-tests: venv test-tools
	PATH=$(VENV)/bin:$$PATH $(PY) -m pytest -q $(or $(LABTESTS),tests/lab/tests)

# The targets run in two groups at once (each target's aliases: shippable/posix/group1 or group2), each group
# in a collection copy of its own ($(BUILD)/integration/groupN) with its lines prefixed [groupN]: a playbook run
# keeps about one core busy and CI has two. TARGETS=... runs those alone, in this copy. Then each target's
# minutes, passed or not (ansible-test's tests/output/data/integration-*.json): CI's 90 minutes are mostly these.
INTEGRATION_GROUPS ?= 1 2
integration: collection test-tools
	@if [ -n "$(strip $(TARGETS))" ]; then \
	  rm -f $(COLL_DIR)/tests/output/data/integration-*.json; status=0; \
	  ($(ANSIBLE_TEST) integration --local --python $(PYVER) --color no $(TARGETS)) || status=$$?; \
	  $(PY) $(ROOT)/scripts/integration-times $(COLL_DIR)/tests/output/data; exit $$status; \
	fi; \
	pids=""; data=""; \
	for group in $(INTEGRATION_GROUPS); do \
	  build=$(BUILD)/integration/group$$group; coll=$$build/ansible_collections/openbsd/vmm; \
	  $(MAKE) --no-print-directory collection BUILD=$$build; data="$$data $$coll/tests/output/data"; \
	  ( cd $$coll && PYTHONUNBUFFERED=1 PATH=$(VENV)/bin:$$PATH $(VENV)/bin/ansible-test integration --local \
	      --python $(PYVER) --color no shippable/posix/group$$group/ 2>&1 | sed -u "s/^/[group$$group] /"; \
	    exit $${PIPESTATUS[0]} ) & pids="$$pids $$!"; \
	done; \
	failed=""; for pid in $$pids; do wait $$pid || failed="$$failed $$pid"; done; \
	$(PY) $(ROOT)/scripts/integration-times $$data; \
	if [ -n "$$failed" ]; then echo "== integration: a group failed (see its [groupN] lines)"; exit 1; fi

test: venv test-tools collection
	@# each step's start time (UTC) in the log: CI's limit is 90 minutes on 2 cores
	@date -u '+== %T sanity'
	$(MAKE) --no-print-directory sanity
	@date -u '+== %T units'
	$(MAKE) --no-print-directory units
	@# the older ansible-core releases (the newest is the .venv's): units and sanity on each, MATRIX_TARGETS on the oldest
	@date -u '+== %T matrix'
	$(MAKE) --no-print-directory matrix MATRIX="$(filter-out $(lastword $(MATRIX)),$(MATRIX))"
	@# every module's EXAMPLES as a playbook, ansible-playbook --syntax-check (release-check adds ansible-lint)
	@date -u '+== %T examples, ee-check'
	PATH=$(VENV)/bin:$$PATH $(PY) scripts/lint-examples --collection $(COLL_DIR) --syntax-only
	$(MAKE) --no-print-directory ee-check
	@date -u '+== %T lab-tests'
	$(MAKE) --no-print-directory lab-tests
	@date -u '+== %T integration'
	$(MAKE) --no-print-directory integration
	@date -u '+== %T end'

demo: collection
	PATH=$(VENV)/bin:$$PATH BUILD=$(BUILD) scripts/demo

# Every benchmark, each printing what it measured; fleet_scale.py (about 20 minutes) also writes
# benchmarks/results/fleet_scale.json and .png (matplotlib, installed here: not needed by the tests).
# benchmarks/_bench.py is what the scripts share, not a benchmark.
bench: collection test-tools
	$(PY) -m pip install --quiet --disable-pip-version-check 'matplotlib>=3.7'
	@for script in benchmarks/[!_]*.py; do echo "== $$script"; \
	  PATH=$(VENV)/bin:$$PATH ANSIBLE_COLLECTIONS_PATH=$(BUILD) $(PY) $$script || exit 1; done

clean:
	rm -rf .build tests/output
