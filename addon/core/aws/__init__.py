"""AWS plumbing shared by the backends and the CLI: sessions and settings (:mod:`.session`),
error translation (:mod:`.errors`), the CloudFormation stack (:mod:`.stack`,
:mod:`.stack_events`, :mod:`.deploy`, :mod:`.destroy`) and publishing the worker image
(:mod:`.images`)."""
