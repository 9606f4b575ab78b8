"""`python -m engine ...` is `klaxon ...`."""

from engine.cli import main

main()
