"""podfence benchmark suite driver (see README.md "Performance"). Run via ../run.sh."""
