"""``python -m benchmark.overhead``: ``benchmark.perf.overhead`` under the name the long-horizon
track's issue gives it (the same arguments; ``--help`` lists them)."""
from benchmark.perf.overhead import main

if __name__ == "__main__":
    main()
