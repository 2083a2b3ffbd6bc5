"""A job of K ≥ 1 members: built (``build``), run (``run``), and finished (``finished``)."""
