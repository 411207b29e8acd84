"""The one exception type of `trex.data`.

Every problem with input data (a missing file, a malformed line, an unknown task, a label outside the
options) is raised as `DataError` with a message that names the file, line and field, so a run fails
while loading, before any model is built or any training step is taken.
"""


class DataError(ValueError):
    """Bad or missing input data; the message says where and what."""
