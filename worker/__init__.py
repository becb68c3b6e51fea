"""The worker AWS Batch runs: ``python -m worker render`` and ``python -m worker stitch``."""
