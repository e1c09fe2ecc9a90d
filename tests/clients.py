"""API clients for tests: one authenticated as a given user (DRF's force_authenticate, no token)."""

from rest_framework.test import APIClient


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client
