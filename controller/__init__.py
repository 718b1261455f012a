"""P4 flow dispatcher: the controller, its P4Runtime client and the tools around it."""
