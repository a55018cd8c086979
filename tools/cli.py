"""What every command-line entry point shares: user mistakes become one line and exit
code 2, anything unexpected exit code 1 with the traceback in the log."""
from __future__ import annotations

import logging
import sys
from typing import Callable, NoReturn

from live.config import ConfigError
from live.objectives import ObjectiveError
from models import ModelError

USER_ERRORS = (ConfigError, ModelError, ObjectiveError, FileNotFoundError)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def run(main: Callable[[], int | None]) -> NoReturn:
    """Call main() and turn the outcome into an exit code."""
    try:
        code = main() or 0
    except USER_ERRORS as exc:
        fail(str(exc).strip("'\""))
    except KeyboardInterrupt:
        code = 130
    except Exception:
        logging.getLogger("dreamcam").exception("unexpected failure")
        code = 1
    raise SystemExit(code)
