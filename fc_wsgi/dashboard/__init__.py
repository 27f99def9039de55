"""``fc-wsgi dashboard``: the async task page (:mod:`fc_wsgi.dashboard.app`)."""
