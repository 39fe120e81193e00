"""The worker's RPC layer: which methods it serves and how calls reach them (registry.py,
validation.py), the wire format (wire.py), the stdio/TCP server (serve.py, the entry point
`python -m nfhm.rpc.serve`; for TCP, lobby.py admits connections with the token, credentials.py
reads the token and TLS key, confinement.py holds clients to the allowed paths and plug-ins),
torchrun's ranks (torchrun.py) and the pythonia entry point (pythonia.py). It depends on
nfhm.methods and nfhm.core; nothing there depends on it.
"""

import os

# Every worker process starts here, before torch (and its OpenMP) loads. OpenMP threads that
# spin while they wait took the cores from the work itself whenever another process was busy:
# 30 training steps took 7.9-8.5 s instead of 1.9-2.2 s beside one other job, and a t-SNE of 200
# points 37 s instead of 1 s (measured on 2 cores). A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
