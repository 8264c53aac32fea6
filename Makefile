# redactd — `make run` and `make test` work on a fresh Debian 12 / Ubuntu machine.
# Each installs only what is missing: apt packages (as root or through sudo), a virtualenv
# in .venv, the package itself (editable) with its dev extra.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       := .venv
VPY        := $(VENV)/bin/python
REDACTD    := $(VENV)/bin/redactd
CONFIG     ?= etc/redactd.yaml
CUSTODY_KEY ?= var/keys/custody.key
# Debian packages the project needs at run time and in its tests.
# espeak-ng: real synthetic speech for the audio tests and bench/audio.py.
# chromium and chromium-driver: the console's browser tests (Selenium).
APT_PKGS   := ffmpeg libimage-exiftool-perl libgl1 libglib2.0-0 python3-venv systemd espeak-ng chromium chromium-driver redis-server
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# The optional [yolo] extra (ultralytics + torch, ~6 GB) lives in a venv of its own, so that
# `make run` never carries it; `make test` builds it and runs the tests marked `yolo` there.
# torch and torchvision are pinned together: a bare `torch` takes the newest CUDA build, and a
# mismatched torchvision fails to import ("operator torchvision::nms does not exist").
YOLO_VENV  := .venv-yolo
YOLO_PINS  := torch==2.14.1 torchvision==0.29.1
# Silero VAD's model ships in the silero-vad wheel, whose metadata requires torch; redactd reads the
# .onnx file and runs it on onnxruntime, so the wheel goes in without its dependencies.
SILERO_PIN := silero-vad==6.2.3
# bench/audio.py's own environment: an independent speaker-embedding model (resemblyzer, weights in
# its wheel, torch CPU), a real speech recording (the WAV in useful-moonshine-onnx's wheel) and
# recorded non-speech sounds (music, impacts: pygame's example data). bench/strength.py's face
# recogniser: dlib's ResNet and 5-point landmark weights from face-recognition-models' sdist (its
# LICENSE file: CC0 1.0; the "MIT" in its metadata is the packaging's), run by dlib-bin, dlib's
# prebuilt wheel (Boost licence; plain `dlib` is an sdist that compiles with CMake). Neither declares
# a dependency. Never redactd dependencies.
BENCH_VENV := .venv-bench
BENCH_PINS := torch==2.13.0 resemblyzer==0.1.4 "setuptools<81"
BENCH_NODEPS := useful-moonshine-onnx==20251121 pygame==2.6.1 dlib-bin==20.0.1.post1 face-recognition-models==0.3.0

.PHONY: run test deps venv yolo-venv bench-venv lint bench clean layout install uninstall

run: venv layout
	@# The custody log's signing key, made once (never overwritten): redactd never runs without it.
	@[ -f $(CUSTODY_KEY) ] || $(REDACTD) keys init --config $(CONFIG)
	$(REDACTD) config check --config $(CONFIG)
	@echo "redactd: drop video files into   $(CURDIR)/var/inbox/"
	@echo "         clean copies appear in   $(CURDIR)/var/clean/  (review: var/review/, failed: var/failed/)"
	@echo "         in another terminal:     $(REDACTD) --config $(CONFIG) status"
	@echo "         stop: Ctrl-C (finishes running jobs; press again to stop at once)"
	$(REDACTD) --config $(CONFIG) run

# The yolo tests need .venv-yolo (~6.6 GB). YOLO_TESTS=auto (the default) builds it where there is
# room and otherwise runs the rest of the suite and says, first and last, that the yolo tests did
# not run and why; YOLO_TESTS=yes makes the missing room an error; YOLO_TESTS=no never builds it.
YOLO_TESTS ?= auto
# Shell: true where .venv-yolo is built or there is room to build it; otherwise says why, false.
YOLO_ROOM = { free=$$(df -Pk . | awk 'NR==2 {print int($$4/1048576)}'); tmpfree=$$(df -Pk $${TMPDIR:-/tmp} | awk 'NR==2 {print int($$4/1048576)}'); \
  [ -x $(YOLO_VENV)/bin/python ] || { [ "$$free" -ge $(YOLO_FREE_GB) ] && [ "$$tmpfree" -ge $(YOLO_FREE_GB) ]; } || \
  { echo "$(YOLO_VENV) (torch + ultralytics) needs about $(YOLO_FREE_GB) GB free;" \
      "$$free GB free here ($(CURDIR)), $$tmpfree GB in $${TMPDIR:-/tmp}. Free some space, or set YOLO_FREE_GB lower if you know better." >&2; false; }; }

test: venv
	@case "$(YOLO_TESTS)" in \
	  no) ;; \
	  yes) $(MAKE) --no-print-directory yolo-venv ;; \
	  auto) if room=$$($(YOLO_ROOM) 2>&1); then $(MAKE) --no-print-directory yolo-venv; \
	        else echo "make test: the yolo tests will NOT run: $$room" >&2; fi ;; \
	  *) echo "make test: YOLO_TESTS is auto, yes or no (not '$(YOLO_TESTS)')" >&2; exit 2 ;; \
	esac
	$(VPY) -m pytest -m "not yolo" $(PYTEST_ARGS)
	@if [ "$(YOLO_TESTS)" != no ] && [ -f $(YOLO_VENV)/.installed ]; then \
	  echo "$(YOLO_VENV)/bin/python -m pytest -m yolo"; $(YOLO_VENV)/bin/python -m pytest -m yolo; \
	else \
	  echo "make test: the tests marked yolo (the optional [yolo] extra) did NOT run:" \
	    "$$( [ "$(YOLO_TESTS)" = no ] && echo "YOLO_TESTS=no." || { $(YOLO_ROOM) 2>&1 && echo "$(YOLO_VENV) is not built."; } )" >&2; fi

deps:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "apt packages present: $(APT_PKGS)"; fi

$(VENV)/.installed: pyproject.toml | deps
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "redactd needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	[ -x $(VPY) ] || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev,distributed]'
	$(VPY) -m pip install -q --no-deps $(SILERO_PIN)
	touch $@

venv: deps $(VENV)/.installed

# torch's wheels unpack to ~6.6 GB, plus pip's temporary copy while it installs: say so before pip
# dies half-way with "[Errno 28] No space left on device".
YOLO_FREE_GB ?= 9

$(YOLO_VENV)/.installed: pyproject.toml | deps
	@$(YOLO_ROOM) || exit 1
	[ -x $(YOLO_VENV)/bin/python ] || $(PYTHON) -m venv $(YOLO_VENV)
	$(YOLO_VENV)/bin/python -m pip install -q --upgrade pip
	$(YOLO_VENV)/bin/python -m pip install -q $(YOLO_PINS) -e '.[dev,distributed,yolo]'
	$(YOLO_VENV)/bin/python -m pip install -q --no-deps $(SILERO_PIN)
	touch $@

yolo-venv: deps $(YOLO_VENV)/.installed

# The Makefile too: a bench venv built before a pin was added gets it on the next run.
$(BENCH_VENV)/.installed: pyproject.toml Makefile | deps
	[ -x $(BENCH_VENV)/bin/python ] || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q $(BENCH_PINS) -e .
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps $(SILERO_PIN) $(BENCH_NODEPS)
	touch $@

bench-venv: deps $(BENCH_VENV)/.installed

# A preload that hides AVX-512 and VNNI from every library's CPU check, to measure the AVX2 paths
# on a newer CPU (see the file's header and README "The same bench as on an AVX2-only CPU").
bench/avx2only.so: bench/avx2only.c
	$(CC) -O2 -Wall -Wextra -shared -fPIC -o $@ $<

# The local default layout that etc/redactd.yaml points at.
layout:
	mkdir -p var/inbox var/raw var/clean var/review var/failed var/state var/keys
	chmod 700 var/raw var/state var/keys

# The system service: a venv of its own (system Python, not this checkout's .venv), then
# `redactd install` (user, group, /srv/redactd, /etc/redactd, signing key, unit; safe to re-run).
# DESTDIR=/some/root installs into another root filesystem instead of /.
INSTALL_VENV  ?= /opt/redactd/venv
SYSTEM_PYTHON ?= /usr/bin/python3
INSTALL_ROOT  := $(if $(DESTDIR),--root $(DESTDIR))

install: deps
	[ -x $(INSTALL_VENV)/bin/python ] || $(SUDO) $(SYSTEM_PYTHON) -m venv $(INSTALL_VENV)
	$(SUDO) $(INSTALL_VENV)/bin/python -m pip install -q --upgrade .
	$(SUDO) $(INSTALL_VENV)/bin/python -m pip install -q --no-deps $(SILERO_PIN)
	$(SUDO) $(INSTALL_VENV)/bin/redactd install --source $(CURDIR) --bin $(INSTALL_VENV)/bin/redactd $(INSTALL_ROOT)

uninstall:
	$(SUDO) $(INSTALL_VENV)/bin/redactd uninstall $(INSTALL_ROOT)

lint: venv
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/mypy

bench: venv bench-venv
	$(VPY) bench/metadata.py
	PYTHONPATH=daemon $(VPY) bench/visual.py
	PYTHONPATH=daemon $(VPY) bench/passes.py
	$(VPY) bench/custody.py
	PYTHONPATH=daemon $(VPY) bench/validation.py
	$(BENCH_VENV)/bin/python bench/audio.py
	$(BENCH_VENV)/bin/python bench/strength.py

clean:
	rm -rf $(VENV) $(YOLO_VENV) $(BENCH_VENV) build *.egg-info .pytest_cache .mypy_cache bench/avx2only.so
