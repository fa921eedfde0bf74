"""Use cases: what the product does, on top of the gate.

Each function takes the request's ``Gate`` and keyword arguments of already-validated values,
asks the gate for rows and permits, applies the rules of ``domain`` and returns an id. None of
them commits: the caller (the GraphQL mutation shell, a CLI command) owns the transaction.
"""
