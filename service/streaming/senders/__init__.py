"""One sender per kind of destination, all with the :class:`~.base.Sender` interface."""
