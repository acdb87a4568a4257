"""Lets `python -m rlvr ...` (and `torchrun -m rlvr ...`) run the CLI."""

from rlvr.cli import main

if __name__ == "__main__":
    main()
