"""What a job measures after its test pass, each a registered evaluation (``configs.py``)."""
