"""`python -m rlvr.cli`: the `rlvr` command without the console-script wrapper."""

from rlvr.cli import main

if __name__ == "__main__":
    main(prog_name="rlvr")
