"""The local backend: the AWS Batch job graph on this computer, run by a detached
supervisor (:mod:`.backend`, :mod:`.supervisor`, :mod:`.state`, :mod:`.processes`)."""
