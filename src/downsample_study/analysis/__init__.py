"""Measurements of a trained net beyond accuracy: shift robustness (``shift``) and the
activations around each downsampling stage (``featuremaps``)."""
