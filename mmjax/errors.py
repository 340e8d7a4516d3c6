"""The one exception type for mistakes a user can fix (bad config, bad data, bad command line).

The CLI turns a ``UserError`` into a single line on stderr and exit code 2, before any training
starts; everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input: config, data files, or command-line arguments."""
