"""Training: the LightningModule, the Trainer and its callbacks, the optimizer and logger
registries and the speed defaults; ``job.build_job`` puts them together."""
