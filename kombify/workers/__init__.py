"""Worker processes: which task queue runs which workflows and activities.

The node agent, which the design card also lists under "workers", is in :mod:`kombify.agent`
(it runs on the nodes rather than beside Temporal); this package keeps ``protogen``, which
builds its gRPC code from ``proto/``.
"""
