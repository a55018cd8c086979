# The two commands: `make run` (set up, then start the installation) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup system clean bench gpucheck

setup: $(STAMP)

# Re-install only when the declared dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m live.launch

# Debian packages the tests drive for real: chromium + chromium-driver (the web remote's
# page in a headless browser), jackd2 (a MIDI server with virtual ports where the ALSA
# sequencer is absent, and a sound server without a sound card) and libportaudio2 (the
# microphone's PortAudio) and xvfb (qa.livecheck's virtual screen). Installed when missing,
# as root; otherwise those tests say why they skip (under CI a missing browser fails).
SYSTEM_PACKAGES := chromium chromium-driver jackd2 libportaudio2 xvfb
system:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! command -v jackd >/dev/null \
	    || ! /sbin/ldconfig -p | grep -q libportaudio.so.2 || ! command -v Xvfb >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(SYSTEM_PACKAGES) (apt-get)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null \
	      || echo "note: apt-get could not install $(SYSTEM_PACKAGES)"; \
	  else echo "note: $(SYSTEM_PACKAGES) missing and not root: the browser and MIDI-port tests will skip"; fi; \
	fi

test: $(STAMP) system
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m qa.bench --quick

# The CUDA path proved on an NVIDIA machine: CUDA tests, each backend against the CPU,
# the benchmark at fp16 and the live pipeline, as one table; one line (exit 0) elsewhere.
gpucheck: $(STAMP)
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(BIN)/python -m qa.gpucheck

clean:
	rm -rf $(VENV) out
