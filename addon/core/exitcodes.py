"""Exit codes: the worker's (part of the contract with the Batch retry strategy) and the
command line's (:data:`CLI`, the table the README shows).

The job definitions and the submit-time retry strategy retry ``RETRYABLE`` (and Spot
reclaims, ``Host EC2*``) and stop on everything else, ``CONTENT_ERROR`` above all.
"""

SUCCESS = 0
#: bad spec, corrupt or unreadable .blend, no camera, missing frames for stitch:
#: retrying the same input cannot help
CONTENT_ERROR = 65  # EX_DATAERR
#: interrupted (SIGTERM from a terminated job or a cancel), network or storage trouble, a Blender crash:
#: worth another attempt, which resumes where this one stopped
RETRYABLE = 75  # EX_TEMPFAIL

#: ``check`` (and ``submit``'s check before it packs): errors found, nothing uploaded
CHECK_ERRORS = 43
#: ``check``: warnings but no errors (a submit goes ahead)
CHECK_WARNINGS = 44

#: Every exit status of the ``aws-batch-render`` command, and what it means. The README's
#: exit-code table lists exactly these (a test compares them, and checks that every error
#: class of the core and the CLI exits with one of them).
CLI = {
    SUCCESS: "success",
    1: "an error without a more specific code",
    2: "bad input: frame list, job spec, storage URI, backend options",
    3: "storage: reading or writing the bucket or folder failed",
    4: "stack deploy/destroy failed",
    5: "Docker missing",
    6: "unknown or unreadable submission record",
    7: "local backend error",
    8: "status --watch / submit --watch ended FAILED or CANCELLED",
    9: "image publish failed",
    20: "AWS: another AWS error",
    21: "AWS: no credentials",
    22: "AWS: expired token",
    23: "AWS: invalid key",
    24: "AWS: access denied",
    25: "AWS: bucket missing",
    26: "AWS: bucket in another region",
    27: "AWS: queue missing/disabled/invalid",
    28: "AWS: job definition missing",
    29: "AWS: throttled",
    30: "AWS: network unreachable",
    31: "AWS: unknown job id",
    32: "nothing failed to retry",
    33: "retry while chunks still run",
    34: "nothing to download yet",
    40: "missing files in the scene",
    41: "packing failed",
    42: "Blender could not read the scene",
    43: "check found errors (submit stops before packing)",
    44: "check found warnings only",
    45: "the scout render (estimate, --chunk auto) failed",
    130: "cancelled",
}
