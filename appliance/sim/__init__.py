"""The appliance on virtual time: :mod:`~appliance.sim.harness` plays scenarios, hours in seconds;
:mod:`~appliance.sim.metrics` turns their traces into figures."""
