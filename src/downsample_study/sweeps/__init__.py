"""What runs around the jobs of a multirun: their names (``naming``), the launcher presets'
settings and checks (``launchers``), slots for jobs side by side (``slots``), how far a sweep
has got (``progress``, ``running``) and the end-of-sweep summary (``summary``)."""
