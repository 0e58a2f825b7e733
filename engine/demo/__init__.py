"""The built-in demo: a simulated cohort calibrated to the study and synthetic phantom scans.

Nothing outside this package imports it."""
