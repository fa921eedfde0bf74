"""The service's plain HTTP parts: the OAuth token endpoint, health checks, and the ASGI
middleware every request passes through. Each is a small module that ``api.app`` assembles.
"""
