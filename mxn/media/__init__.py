"""Media: what every stage needs of pictures and time, and nothing of networks or storage.

- :mod:`~mxn.media.video`: probe and decode videos (:class:`VideoInfo`,
  :func:`probe`, :func:`iter_frames`, :class:`VideoError`), one frame in
  memory at a time;
- :mod:`~mxn.media.text`: text in any script drawn on frames;
- :mod:`~mxn.media.segments`: frames close in time merged into spans.

The bottom floor of the house (docs/ARCHITECTURE.md): it imports no other part of mxn.
"""

from .segments import merge_segments
from .video import DecodedFrame, VideoError, VideoInfo, content_hash, iter_frames, probe, read_frames

__all__ = [
    "DecodedFrame",
    "VideoError",
    "VideoInfo",
    "content_hash",
    "iter_frames",
    "merge_segments",
    "probe",
    "read_frames",
]
