"""Chain Matcher: finds enterprises outside a district that would fill the gaps of its industrial chains.

The library has no HTTP, argument parsing or environment reads: entry points in ``pipelines/`` and
``service/`` build :class:`matcher.settings.Settings` and pass plain values down.
"""

__version__ = "0.1.0"
