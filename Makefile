# Two commands do all set-up on a fresh machine: `make run` and `make test`.
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null)

.PHONY: run test check setup

setup:
ifndef UV
	python3 -m pip install --quiet "uv==$(UV_VERSION)"
endif
	uv sync --frozen --quiet

run: setup
	uv run coachloop run

test: setup
	bash scripts/check
