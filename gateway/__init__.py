"""Switchboard gateway: the MCP/A2A front, catalog, call pipeline, admin API and CLI."""

__version__ = "0.1.0"
