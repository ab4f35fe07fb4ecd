# The two commands: `make dev` starts the whole local stack, `make test` runs every test.
.PHONY: dev test build bench tools
dev:
	bash scripts/dev.sh
test:
	bash scripts/test.sh
build:
	bash scripts/build.sh
bench:
	bash scripts/bench.sh
tools:
	bash scripts/ensure-tools.sh
