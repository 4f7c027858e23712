"""What a query and its tuning do unless told otherwise, in one module that imports nothing.

The executor and the tuner read their modes and defaults from here, and so do
the Python API and the command line when they start (the executor and the
tuner load NumPy and TensorFlow; this module loads neither). The targets they
tune for are the house's own, :mod:`mxn.targets`.
"""

#: How a query decides its candidates: the query MXN's exits first (mxn), the GT-CNN on every candidate
#: (focus, as Focus does), or the GT-CNN on every stored object without the index (all).
MODES = ("mxn", "focus", "all")
DEFAULT_MODE = "mxn"
#: Ingest modes whose index a query can use.
INDEX_MODES = ("mxn", "focus")

#: The share of the candidates the tuner holds out to measure its thresholds on.
DEFAULT_HOLDOUT = 0.5
#: The share of the allowed recall loss that the index stage may spend (the exits keep the rest).
DEFAULT_INDEX_RECALL_SHARE = 0.3
