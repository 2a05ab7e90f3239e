"""The operator's console pages about channels and sync health (under /dashboard/).

Each page is a module of thin views over selectors and services; ``urls.py`` routes them.
Every view requires a signed-in user; actions check their permission in the service.
"""
