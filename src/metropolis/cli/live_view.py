"""`metropolis run --view`: the viewer served while the run goes, read from the run's trace recorder.

The run does nothing for it per step; the server's threads only work when a page looks (twice a second; a page
following the run asks for the frames since it last looked): `metropolis bench view` measures what that costs.
Once the run ends the page keeps serving the finished run until Ctrl-C.
"""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread

import uvicorn

from metropolis.agents.player_input import command_from_dict
from metropolis.cli.run_setup import player_of
from metropolis.engine import Simulation
from metropolis.trace import TraceRecorder
from metropolis.viewer.server import PlayerHook, make_app, serve
from metropolis.viewer.source import LiveSource
from metropolis.viewer.town import town_map


@dataclass(slots=True)
class LiveView:
    url: str
    server: uvicorn.Server
    thread: Thread

    def wait(self) -> None:
        """Keep serving the finished run until Ctrl-C (or SIGTERM), then stop the server."""
        try:  # the line is inside: Ctrl-C right after it still ends the view quietly
            print(f"view: {self.url} shows the finished run (Ctrl-C to stop)", flush=True)
            while self.thread.is_alive():
                self.thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            self.server.should_exit = True
            self.thread.join(5)


def live_view(sim: Simulation, recorder: TraceRecorder) -> LiveView:
    source = LiveSource.attach(sim, recorder)
    tilemap = sim.world.tilemap
    extent = (tilemap.width - 2, tilemap.height - 2) if tilemap is not None else (100, 100)
    player = player_of(sim)
    hook = None
    if player is not None:
        inputs = player.inputs
        hook = PlayerHook(sim.agents.index(player), lambda body: inputs.push(command_from_dict(body)))
    url, server, thread = serve(make_app(source, town_map(sim.world.name, extent), hook))
    print(f"view: {url} (live)", flush=True)
    return LiveView(url, server, thread)
