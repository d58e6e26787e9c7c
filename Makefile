# The two commands of the README, and the pieces they are made of.
.PHONY: run test bootstrap stack-up stack-down stack-status lint

run: bootstrap
	.venv/bin/visionlog run

test: bootstrap
	.venv/bin/visionlog stack install
	.venv/bin/python -m pytest

bootstrap:
	@stack/bootstrap.sh

stack-up: bootstrap
	.venv/bin/visionlog stack up

stack-down:
	.venv/bin/visionlog stack down

stack-status:
	.venv/bin/visionlog stack status

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
