"""Analyses of activations beyond their derivatives: signal propagation and initialization gains
(:mod:`actsym.analysis.signal`) and vector (non-pointwise) activations such as softmax over a dimension
(:mod:`actsym.analysis.vector`).

Submodules are imported lazily by their users; this package imports nothing heavy.
"""
