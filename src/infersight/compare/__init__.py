"""Compare and decide: one model across clouds, regions and deployments side by side (`report`), and the
routing hints a router applies (`routing`), served at /api/v1/compare and /api/v1/routing (`api`)."""
