"""The simulated UK Biobank cohort: published targets, the draw, its parameters and solves."""
