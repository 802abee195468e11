"""`python -m alignlab ...`: the `alignlab` command, where its script is not on PATH."""

from alignlab.cli import main

if __name__ == "__main__":  # importing the module (the import-graph test does) runs nothing
    main()
