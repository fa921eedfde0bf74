"""The access log: every disclosure the gate makes, written in one batch per request, fail-closed."""
