"""Query: answer label queries over an ingested index, with MXN early exits
gating the ground-truth CNN (DESIGN.md section 5). Depends on :mod:`mxn` and
:mod:`storage`."""
