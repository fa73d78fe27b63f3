"""The clock and its discipline.

- :mod:`~appliance.clock.base`: the clock interface (chrony's operations, their
  sign conventions) and the operations as values;
- backends: :mod:`~appliance.clock.kernel` (``adjtimex``),
  :mod:`~appliance.clock.soft` (software-corrected, unprivileged),
  :mod:`~appliance.clock.simulated` (virtual oscillator on virtual time),
  with :mod:`~appliance.clock.slew` modelling how a clock works off a slew;
- :mod:`~appliance.clock.discipline`: the loop (pure);
- :mod:`~appliance.clock.drift`: the drift file;
- :mod:`~appliance.clock.allan`: Allan deviation and the wander model.
"""
