"""Faces: label who appears when in a movie with multi-exit face embeddings,
a running-average face database and an oracle (docs/ARCHITECTURE.md section 6, Algorithm
3). Depends on :mod:`mxn` and :mod:`storage`."""
