"""Command-line families of ``rnnlab``; each module has ``register(subparsers)``."""
