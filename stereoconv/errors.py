"""The one exception type for mistakes a user can make (bad path, bad option, bad file).

The CLI turns it into a single line on stderr and a non-zero exit; anything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """An error caused by the input or the options, explained in one line."""
