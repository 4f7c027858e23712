"""What every tuned threshold aims at unless told otherwise, said once for the whole house.

Training calibrates each exit's threshold for a precision, query tuning for a
precision and a recall, face tuning for an accuracy: by default all of them
99%, the dissertation's setting, each held with a one-sided Wilson margin at
95% confidence. The library's functions, the Python API and the command line
all read these names, so a default is changed in one place.

The module imports nothing: the command line reads it when it starts, and
:mod:`mxn.calibration`, the natural home, loads NumPy.
"""

#: The precision (calibration, query tuning), recall (query tuning) and accuracy (face tuning) aimed at.
TARGET_PRECISION = TARGET_RECALL = TARGET_ACCURACY = 0.99

#: How sure the Wilson margin makes a target hold on data not seen (0.5: no margin).
CONFIDENCE = 0.95
