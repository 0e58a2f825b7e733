"""Cohort statistics: the study's tests and models, its tables, reference percentiles and the PDF report."""
