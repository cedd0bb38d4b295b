"""The core's built-in toy recipe: SimCLR on generated shape images.

It exercises every part of the core (config, the loop, checkpoints, DDP, results, bench, demo)
before and independently of any domain package. CLI: ``pretrainlab simclr <verb>``.
"""
