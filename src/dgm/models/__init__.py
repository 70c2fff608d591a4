"""Every model family, one module per model; :func:`dgm.registry._import_all` imports them all."""
