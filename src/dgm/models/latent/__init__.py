"""Latent-variable models (lectures 2-4, 7, 8, 12): exact latent models, the VAE assembled from parts, discrete latents."""
