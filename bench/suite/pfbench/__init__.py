"""podfence benchmark suite driver (see ../PERFORMANCE.md). Run via ../run.sh."""
