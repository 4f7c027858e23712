"""Label queries over an ingested index: MXN early exits gating the ground-truth CNN."""
