"""spikedyn.hardware: compile spiking networks to Lava processes (numpy + nir + lava-nc; never torch)."""
