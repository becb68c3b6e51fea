"""Where a submission renders: the backend protocol and submission record (:mod:`.base`),
the status model both backends report in (:mod:`.status`), choosing a backend
(:mod:`.factory`), AWS Batch (:mod:`.aws_batch`) and this computer (:mod:`.local`)."""
