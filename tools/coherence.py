"""`python -m tools.coherence`, the coherence report's old name: it runs `python -m
qa.coherence` (the measuring tools live in qa/, apart from the product's own tools)."""
from live.cli import run
from qa.coherence import main

if __name__ == "__main__":
    run(main)
