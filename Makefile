# The two commands: `make dev` starts the whole local stack, `make test` runs every test.
# `make eval` measures the agent on real app requests (docs/eval.md).
.PHONY: dev test build bench tools eval
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
eval:
	bash scripts/eval.sh $(EVAL_ARGS)
