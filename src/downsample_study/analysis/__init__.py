"""Measurements of a trained net beyond accuracy: shift robustness and feature maps."""
