"""Configuration: the schema, Hydra's ConfigStore, start-up checks, one-line composing errors."""
