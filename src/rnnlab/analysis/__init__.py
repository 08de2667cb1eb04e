"""Analysis: gradient flow through time, gate traces, plots (arrays in, figures out), reports."""
from rnnlab.analysis.gradients import decay_factor, gradient_norms, state_gradients
