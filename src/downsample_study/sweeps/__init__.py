"""What runs around a multirun's jobs: their names, launcher checks, plan, progress and summary."""
