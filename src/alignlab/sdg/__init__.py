"""Synthetic data generation guided by the taxonomy: generators, judges, prompt templates."""
