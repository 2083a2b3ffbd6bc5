"""What runs around the jobs of a multirun: their names (``naming``), the launcher presets'
settings and checks (``launchers``), slots for jobs side by side (``slots``) and the
end-of-sweep summary (``summary``)."""
