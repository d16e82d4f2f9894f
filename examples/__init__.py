"""Example applications built on event-pipeline, installed with the package.

They import only public names (``pipeline``, ``producers``, ``consumers`` and the public
capability packages), so they double as reference code.
"""
