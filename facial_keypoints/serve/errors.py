"""Why the inference pool could not answer a request; ``app`` and ``track`` turn each into its status."""


class PoolBusy(Exception):
    """The queue is full; ``retry_after`` seconds is when a retry has a fair chance."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class PoolTimeout(Exception):
    """A job took longer than the timeout."""


class JobFailed(Exception):
    """The worker running the job died (``status`` 500), or no worker can load the model (503)."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status
