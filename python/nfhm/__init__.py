"""nfhm's Python worker: the heavy compute behind the TypeScript orchestrator."""

__version__ = "0.1.0"
