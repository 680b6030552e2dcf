"""The dashboard: a live web view of one cluster (port 8183) with a few confirmed actions.

main.py     `python -m zato.dashboard.main DIR`: gevent WSGI server, pidfile, signals
app.py      the bottle routes: login/logout, the page, JSON state, server-sent events, actions
auth.py     sessions (cookie) and CSRF tokens; the cluster's admin credentials are the login
state.py    one snapshot of the cluster, refreshed twice a second by one greenlet
actions.py  drain / ready a server in the LB, restart a connector, deploy, re-send parked
page.py     the HTML page with its small inline script (no framework, no network)
"""
