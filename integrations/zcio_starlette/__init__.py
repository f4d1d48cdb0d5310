"""Starlette integration (planned: a zero-copy ``FileResponse`` and ``StaticFiles``).

Nothing is exported yet; the package ships now so that the distribution's layout is stable.
"""
