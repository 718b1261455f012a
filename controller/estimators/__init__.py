"""Load estimation (FB_EST): per-flow rate and busy probability, RTT, per-server load.

Pure functions and small classes on numbers: the controller feeds them counter deltas and
digests, the simulator feeds them its own model of the same counters.
"""

from controller.estimators.busy_probability import busy_this_interval, update_busy
from controller.estimators.flow_estimates import FlowEstimates
from controller.estimators.flow_rate import decay_factor, update_rate
from controller.estimators.rtt import RttPredictor, rtt_sample
from controller.estimators.server_load import residual_capacity, server_load

__all__ = ["decay_factor", "update_rate", "busy_this_interval", "update_busy", "RttPredictor",
           "rtt_sample", "residual_capacity", "server_load", "FlowEstimates"]
