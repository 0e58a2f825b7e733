"""Phantom subjects: synthetic pelvis-to-knee Dixon anatomy in the UK Biobank package layout."""
