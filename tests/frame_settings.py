"""Frame-encoding settings small enough that tests of ``from_frame``'s kernels cross every boundary: label
guesses from 256 rows, dictionaries of at most 40 labels, 7 fixed blocks, and the threaded per-column steps
from the first row."""

from twinkernel.config_frame import FrameEncodingConfig

SMALL = FrameEncodingConfig(
    chunk_rows=256, dictionary_cap=40, keys_per_partition=1024, key_blocks=7, threaded_min_rows=0
)
