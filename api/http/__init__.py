"""The service's HTTP surface: the GraphQL view, the OAuth token endpoint, health checks, and the
ASGI middleware every request passes through. Each is a small module that ``api.app`` assembles.
"""
