"""Every model family, one module per model; :func:`dgm.api.model_class` imports them all."""
