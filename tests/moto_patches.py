"""Where moto lags behind AWS, brought in line with AWS's documented behaviour.

- AWS Batch: a compute environment without ``ServiceRole`` uses the service-linked role
  ``AWSServiceRoleForBatch``, which Batch creates on first use (CreateComputeEnvironment,
  serviceRole). moto 5.2 still requires a service role (and a CloudFormation
  ``AWS::Batch::ComputeEnvironment`` without one answers 500). The stack names none.

Used by the moto server the tests start (``python tests/moto_patches.py ARGS`` = moto.server
with these applied) and by the in-process moto.
"""

from __future__ import annotations

import sys
from typing import Any

_APPLIED = False
_SLR_TRUST = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
    '"Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}]}'
)


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from moto.batch import models
    from moto.iam.exceptions import NotFoundException as IAMNotFoundException

    create = models.BatchBackend.create_compute_environment

    def create_compute_environment(self: Any, *args: Any, **kwargs: Any) -> Any:
        given = kwargs.get("service_role", args[4] if len(args) > 4 else None)
        if not given:  # Batch's service-linked role, created when missing
            try:
                role = self.iam_backend.get_role("AWSServiceRoleForBatch")
            except IAMNotFoundException:
                role = self.iam_backend.create_role(
                    "AWSServiceRoleForBatch", _SLR_TRUST, "/aws-service-role/batch.amazonaws.com/",
                    permissions_boundary=None, description="", tags=[], max_session_duration="3600",
                )  # fmt: skip
            if len(args) > 4:
                args = (*args[:4], role.arn, *args[5:])
            else:
                kwargs["service_role"] = role.arn
        return create(self, *args, **kwargs)

    from_cfn = models.ComputeEnvironment.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls: Any, resource_name: str, cloudformation_json: dict, *args: Any,
                                        **kwargs: Any) -> Any:  # fmt: skip
        cloudformation_json["Properties"].setdefault("ServiceRole", "")
        return from_cfn(cls, resource_name, cloudformation_json, *args, **kwargs)

    models.BatchBackend.create_compute_environment = create_compute_environment
    models.ComputeEnvironment.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)
    _APPLIED = True


if __name__ == "__main__":
    apply()
    from moto.server import main

    main(sys.argv[1:])
