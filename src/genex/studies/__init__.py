"""The four studies, each a module of pipeline steps behind `genex <study> <step>`.

A study module reads a dataset through ``genex.data``, builds features, trains models with
``genex.train``, explains them with ``genex.explain`` and writes ``metrics.json`` and a
report section (see ``genex.report.html``). Its ``register(subparsers)`` adds the CLI.
"""
