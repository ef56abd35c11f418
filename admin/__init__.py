"""The program managers' side: staff login and the admin API under /api/v1/admin.

Depends inward only: ``admin`` uses ``loyalty.services`` (and the app's error mapping); nothing in
``loyalty`` but the app factory, which mounts the router, knows about it.
"""
