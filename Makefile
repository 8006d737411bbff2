# The two commands a new user needs; everything else is in scripts/.
.PHONY: demo test lint

demo:  ## set up, start kombify and show it working
	@scripts/demo.sh

test:  ## set up and run the whole test suite (ruff, mypy, pytest)
	@scripts/test.sh

lint:
	@scripts/bootstrap.sh && .venv/bin/ruff check kombify tests benchmarks && .venv/bin/mypy
