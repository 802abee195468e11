"""Phase mixing (LAB): which curated samples, replayed phases and user files go into each
training phase, in exact, seeded amounts. `alignlab mix` runs `alignlab.mix.stage.mix`.

Nothing heavy is imported here: the config loader imports `alignlab.mix.config`.
"""
