"""autoregressive package."""
