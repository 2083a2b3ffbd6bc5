"""Datasets: the registry, their files, on-device splits and batches, the LightningDataModule."""
