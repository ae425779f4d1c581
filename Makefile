# Two commands do all set-up on a fresh machine: `make run` and `make test`.
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null)
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium chromium-driver
# root installs directly; anyone else goes through sudo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test check setup browsers

setup:
ifndef UV
	python3 -m pip install --quiet "uv==$(UV_VERSION)"
endif
	uv sync --frozen --quiet

# Debian's Chromium for the web app's browser tests (Playwright drives it; it downloads no
# browser of its own). A stale package index gets one `apt-get update` and a second try.
browsers:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
		echo "no apt-get here: install Chromium at $(CHROMIUM) to run the browser tests" \
			"(they are skipped without it)"; \
	else \
		echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			$(BROWSER_PACKAGES) \
		|| { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends $(BROWSER_PACKAGES); }; \
	fi

run: setup
	uv run coachloop run

test: setup browsers
	bash scripts/check
