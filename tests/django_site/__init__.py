"""A small Django project for tests/test_django.py: the activejob app and a shop app whose
job marks an order shipped through the ORM."""
