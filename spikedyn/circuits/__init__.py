"""Hand-built circuits: the delay-line head-direction oscillator circuit and a ring-attractor baseline."""
