"""The appliance's status: one frozen snapshot, and pure renderings of it (text, JSON, mode 6 variables, metrics).

:mod:`appliance.status.snapshot` holds the value objects; :mod:`appliance.status.collect` is the one function
that builds a snapshot from the running parts; everything else renders a snapshot and reads nothing else.
"""
