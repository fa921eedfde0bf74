"""Authorization: the policy (Casbin model + policy file), relations compiled to SQL, and the gate.

``authz.gate.Gate`` is the one enforcement point between the API and the data.
"""
