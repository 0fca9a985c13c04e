"""memory: a peer of the gateway (see ARCHITECTURE.md); it never imports `gateway`."""
