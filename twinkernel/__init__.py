"""twinkernel: compiled-kernel digital twins."""
