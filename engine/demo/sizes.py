"""How big the demo is by default.

A module of plain numbers, so ``msmv demo --help`` can show them without loading the simulator.
The simulated cohort's size is the study's (:data:`engine.demo.cohort.targets.N_PARTICIPANTS`).
"""

# Phantom imaging packages ``msmv demo`` queues for the engine (sexes alternate, so both are present).
DEMO_PHANTOMS = 6
