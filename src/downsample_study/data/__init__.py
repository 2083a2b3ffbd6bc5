"""Datasets: the registry (``datasets``), their files (``files``), splits and batches on the
training device (``batches``) and the LightningDataModule (``datamodule``)."""
