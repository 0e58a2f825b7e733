"""Segmentation: UNETR checkpoints, inference, training and evaluation."""
