"""Running the pods bound to this node: workers, sync, status.

The pieces, in the order a pod meets them: :mod:`.admission` decides whether the node can run it,
:mod:`.workers` gives it a worker with a small state machine (syncing → terminating → terminated),
:mod:`.runtimestate` reads what the container runtime has for it, :mod:`.actions` decides what to change
(pure), :mod:`.sync` carries the changes out through CRI, :mod:`.status` computes the status a user sees
(pure) and :mod:`.statusmanager` writes it to the API server when it changed.
"""
