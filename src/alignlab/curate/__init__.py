"""Curation: the generated samples pass through a list of filters and selectors, each deciding
`(keep, reason)` per sample, in the order alignlab.yaml lists them (`curate.steps`).

    dedup           exact and near-duplicate removal (normalised text, MinHash LSH)
    quality         judge-score threshold (AlpaGasus)
    decontaminate   drop samples sharing an n-gram with an evaluation set
    diversity       score-ordered greedy selection under a cosine threshold (Deita)
    style           keep the responses closest to the dataset's dominant style (after SCAR)
    critique_revise the teacher critiques each answer against a principle and revises it

`alignlab curate` runs `alignlab.curate.stage.curate`. This package imports nothing heavy at
import time: the config loader imports `alignlab.curate.config`.
"""
