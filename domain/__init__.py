"""The domain core: plain models, value objects, state machines and validation.

Nothing here knows about GraphQL, HTTP, the policy engine or the access log. Every column that holds
personal data is classified (see :mod:`domain.classification`) so that the privacy layer can decide
about it without a second, drifting list.
"""
