"""Configuration: the schema (``schema``), its registration in Hydra's ConfigStore with the
config folder (``store``), the start-up checks (``validate``) and one-line messages for what
Hydra rejects at composition (``messages``)."""
