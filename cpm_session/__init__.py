"""cpm-session: run Conditioned Pain Modulation visits and keep their data safe."""

__version__ = "0.1.0"
