"""The one exception type of `trex.eval`: bad input to an evaluation, with a message that says what to change."""


class EvalError(ValueError):
    """An evaluation cannot run as asked (unknown task, unusable adapter folder, bad option combination)."""
