"""Test-only ports of the operators' reference code, each naming its source and licence."""
