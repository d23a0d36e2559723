"""Evaluation harness: data loading, training and benchmarking of activation functions."""
