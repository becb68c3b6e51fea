"""The AWS Batch backend, one module per job: see :mod:`.backend`."""
