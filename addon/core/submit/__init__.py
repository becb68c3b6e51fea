"""Before any job exists: read the scene, pack it, upload what the store lacks, build and
write the job spec (:mod:`.pipeline` ties the steps together; :mod:`.options` holds what
they share)."""
