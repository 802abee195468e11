"""Supervised training in phases: tokenisation and loss masks (data), token-budget batching
(batching), the training loop shared with preference training (loop), checkpoints (checkpoint),
and the `alignlab train` stage (phases). Import from the submodules; this package imports
nothing itself, so `alignlab.config` can use `alignlab.train.config` without a cycle.
"""
