"""The GraphQL API and the operator CLI: the composition root that wires domain, authz and audit."""
