"""The traffic world: synthetic traffic-camera videos with ground truth.

No traffic video, labelled image set or pretrained object classifier can be
downloaded here, so mxn renders its own: :mod:`~mxn.world.presets` (the
cameras), :mod:`~mxn.world.sprites` (the seven object classes),
:mod:`~mxn.world.render` (simulation and rendering), :mod:`~mxn.world.video`
(clips with per-frame truth) and :mod:`~mxn.world.crops` (the class-per-folder
training set).
"""
