"""The traffic world: synthetic traffic-camera videos with ground truth.

No traffic video, labelled image set or pretrained object classifier can be
downloaded here, so mxn renders its own: :mod:`~mxn.datasets.world.presets` (the
cameras), :mod:`~mxn.datasets.world.sprites` (the seven object classes),
:mod:`~mxn.datasets.world.render` (simulation and rendering), :mod:`~mxn.datasets.world.video`
(clips with per-frame truth) and :mod:`~mxn.datasets.world.crop_set` (the class-per-folder
training set).
"""
