"""The `p4dispatch` command: the controller's, the simulator's and the testbed's sub-commands."""
