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

#: The share of the candidates the tuner holds out to measure its thresholds on, and the seed that picks them.
DEFAULT_HOLDOUT = 0.5
DEFAULT_SEED = 0
#: The tuner's switches: exits reject as well as accept (else every candidate no exit accepts goes to the
#: GT-CNN); each label gets thresholds fitted on its own candidates; the target is the precision of all
#: the exits' accepts together (else of every exit alone); the index's stored scores reject first.
DEFAULT_ALLOW_REJECT = True
DEFAULT_PER_LABEL = True
DEFAULT_POOLED_PRECISION = True
DEFAULT_INDEX_STAGE = True
#: The share of the allowed recall loss that the index stage may spend (the exits keep the rest).
DEFAULT_INDEX_RECALL_SHARE = 0.3
