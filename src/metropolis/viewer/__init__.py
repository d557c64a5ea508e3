"""See the town: a replay of a run's trace, or a live run, drawn in the browser (`metropolis view RUN`,
`metropolis run --view`). A small FastAPI app serves one static page and a JSON/SSE API over the trace."""

from metropolis.viewer.server import make_app, serve
from metropolis.viewer.source import LiveSource, StepSource, TraceSource

__all__ = ["LiveSource", "StepSource", "TraceSource", "make_app", "serve"]
