"""Ingest: decode traffic videos, extract moving objects, index them under the
aggregated top-k labels of several exits, and cluster them per label
(docs/ARCHITECTURE.md section 4). Depends on :mod:`mxn` and :mod:`storage`."""
