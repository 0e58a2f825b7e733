"""The engine service: inbox, coordinator, per-subject pipeline and the jobs read model."""
