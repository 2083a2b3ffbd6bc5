"""Training: the LightningModule (``module``), the Trainer and its callbacks (``trainer``,
``epochs``, ``resume``), the optimizer and logger registries, and the speed defaults
(``speed``). ``job.build_job`` puts them together."""
