"""GitHub, as the agents, the monitor and the schedules speak to it: the REST client and its
error tree (client.py, errors.py), credentials that change while a daemon runs
(credentials.py), issue-side operations (issues.py), the agents' pull requests (pulls.py),
the hidden markers in what agents write (markers.py) and webhook signatures (webhooks.py,
which devhub uses too). Nothing here knows about claiming, executing or the mesh."""
