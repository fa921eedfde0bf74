"""The access log: every disclosure the gate makes, one batch per request, fail-closed."""
