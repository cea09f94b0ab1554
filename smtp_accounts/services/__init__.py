"""Actions shared by views, tasks and commands.

One module per concern (each under ~300 lines, each with its own owner of the logic),
re-exported here so callers write `services.send_email(...)`. Each module's `__all__`
says what it offers.
"""

from .accounts import *  # noqa: F403
from .connections import *  # noqa: F403
from .delivery import *  # noqa: F403
from .diagnostics import *  # noqa: F403
from .history import *  # noqa: F403
from .keys import *  # noqa: F403
from .outbox import *  # noqa: F403
from .verification import *  # noqa: F403
