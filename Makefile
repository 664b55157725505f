# The two commands of the README: `make demo` and `make test`.
.PHONY: demo test bench setup clean-data

setup:
	bash scripts/bootstrap.sh

demo:
	bash scripts/demo.sh

test:
	bash scripts/test.sh

bench: setup
	bash scripts/with_display.sh .venv/bin/python benchmarks/run.py
