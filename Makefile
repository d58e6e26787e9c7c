# The two commands of the README, and the pieces they are made of.
.PHONY: run test bootstrap models stack-up stack-down stack-status lint manifests

run: bootstrap
	.venv/bin/visionlog run

test: bootstrap
	.venv/bin/visionlog stack install
	.venv/bin/visionlog models provision
	.venv/bin/python -m pytest

bootstrap:
	@stack/bootstrap.sh

models: bootstrap
	.venv/bin/visionlog models provision

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

# Re-render the production manifests checked in under ops/k8s (CI fails on drift).
manifests: bootstrap
	cd ops/ansible && LC_ALL=C.UTF-8 ANSIBLE_CONFIG=ansible.cfg ../../.venv/bin/ansible-playbook -i inventories/production site.yml -e build_dir=$(CURDIR)/.build/manifests
	find ops/k8s -name '*.yaml' -delete
	cp .build/manifests/production/*.yaml ops/k8s/
