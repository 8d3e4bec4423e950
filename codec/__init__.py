"""vcodec: a learned, task-aware video codec (.vcx) with a bench against x264 and x265."""

__version__ = "0.1.0"
