"""`python -m tools.bench`, the benchmark's old name: it runs `python -m qa.bench` (the
measuring tools live in qa/, apart from the product's own tools)."""
from live.cli import run
from qa.bench import main

if __name__ == "__main__":
    run(main)
