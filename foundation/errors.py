"""The one error type for input a user can fix.

Command-line entry points print its message on one line and exit with status 2; anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input (a missing folder, a malformed file, an unknown name) described in one line."""
