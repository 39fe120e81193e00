"""The worker's RPC layer: which methods it serves and how calls reach them (registry.py,
validation.py), the wire format (wire.py), the stdio/TCP server (serve.py, the entry point
`python -m nfhm.rpc.serve`; for TCP, lobby.py admits connections with the token, credentials.py
reads the token and TLS key, confinement.py holds clients to the allowed paths and plug-ins),
torchrun's ranks (torchrun.py) and the pythonia entry point (pythonia.py). It depends on
nfhm.methods and nfhm.core; nothing there depends on it.
"""
