"""`python -m dove_model` is the `dove` command."""

from dove_model.cli import main

main()
