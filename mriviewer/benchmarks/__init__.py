"""Benchmarks behind ``mriviewer bench ...``: code that measures, kept out of the core.

- :mod:`mriviewer.benchmarks.train`: memory and time of the training strategies
  (``mriviewer bench train``), on a synthetic batch.
- :mod:`mriviewer.benchmarks.pgleam`: steps per second of GLEAM vs P-GLEAM over ``torchrun``
  processes (``mriviewer bench train --strategies gleam,pgleam --world-size D``).

The commands (``mriviewer/commands/bench_*.py``) parse options and print tables; the scripts in
the repository's ``benchmarks/`` folder print the README's tables.
"""
