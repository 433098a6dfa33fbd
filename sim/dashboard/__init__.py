"""The live dashboard: a page in the browser that follows a run as it goes.

Takes a run directory, live or finished, and gives a page on 127.0.0.1 (`Dashboard`): prices,
open interest, funding, the LP share price, the insurance fund and deficit, liquidations and
the "what happened" timeline, pushed to the page by server-sent events as the recorder
appends its rows, and a link to the final report once the run has written it.

- `feed`: `RunFeed`, the run directory read as a stream of messages (it tails the tables);
- `app`: the Starlette app: the page, its static files, `/events`, `/report`;
- `server`: `Dashboard`, uvicorn on a bound socket, in a thread beside a run or in the foreground.

The page draws with uPlot, vendored in `static/vendor/` (MIT), so it works offline. Starlette
and uvicorn come with the `dashboard` extra: `pip install 'perpsim[dashboard]'`.
"""

from __future__ import annotations

MISSING_EXTRA = "the dashboard needs starlette and uvicorn: pip install 'perpsim[dashboard]' (or make setup)"


def available() -> str | None:
    """None when the dashboard can run; otherwise what is missing and how to install it."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return MISSING_EXTRA
    return None
