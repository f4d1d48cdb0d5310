"""uvicorn integration (planned: protocols implementing the ASGI zero-copy extensions).

Nothing is exported yet; the package ships now so that the distribution's layout is stable.
"""
