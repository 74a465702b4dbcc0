"""How many pairs: plateau fits of score against data size and the sweeps that measure them."""
