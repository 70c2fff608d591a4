"""adversarial package."""
