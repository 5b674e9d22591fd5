"""The web side: the app factory, the CMS API, the compatibility endpoints and the moderator pages.

Everything here may use the core (``service.*``); nothing in the core imports ``service.web``.
"""
