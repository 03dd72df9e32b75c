"""The guard (`ccc-guard`): callers never wait forever for a controller that does not come back.

A small process beside the controller (systemd unit ccc-guard.service, or `make run`). It needs
neither the ARI application nor the store: it asks the controller's /healthz every
`guard.check_interval` seconds; after `guard.takeover_timeout` seconds without a controller that
is connected to ARI, it reads the channels and bridges over ARI REST (which works without the
application's WebSocket) and moves every caller that is waiting in a queue or in the IVR out of
Stasis into the dialplan's fallback route with AMI `Redirect`. Talking calls, agent legs and
helper channels are never touched. See `selection.py` for exactly which channels move.
"""
