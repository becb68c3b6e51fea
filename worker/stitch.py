def run_stitch() -> int:
    raise NotImplementedError
