"""What every job needs while it runs, below the job: signals and stops, locks, slots and
the same-job checks."""
