"""Prefect tasks: thin wrappers around :mod:`synth`.

Every process that runs these tasks (the CLI, a worker, ``serve``) imports this package, so
the user-error log filter is installed here once.
"""

from tasks.user_errors import quiet_user_error_tracebacks

quiet_user_error_tracebacks()
