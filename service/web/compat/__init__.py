"""Drop-in replacements for other services' APIs: Perspective and Akismet, with per-key rate limits."""
