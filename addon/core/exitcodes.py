"""Worker exit codes: part of the contract with the Batch retry strategy.

The job definitions and the submit-time retry strategy retry ``RETRYABLE`` (and Spot
reclaims, ``Host EC2*``) and stop on everything else, ``CONTENT_ERROR`` above all.
"""

SUCCESS = 0
#: bad spec, corrupt or unreadable .blend, no camera, missing frames for stitch:
#: retrying the same input cannot help
CONTENT_ERROR = 65  # EX_DATAERR
#: interrupted (SIGTERM, Spot warning), network or storage trouble, a Blender crash:
#: worth another attempt, which resumes where this one stopped
RETRYABLE = 75  # EX_TEMPFAIL

#: ``check`` (and ``submit``'s check before it packs): errors found, nothing uploaded
CHECK_ERRORS = 43
#: ``check``: warnings but no errors (a submit goes ahead)
CHECK_WARNINGS = 44
