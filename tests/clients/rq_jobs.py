"""The job RQ's worker runs in tests/clients/rq_tenant.py."""


def add(a, b):
    return a + b
