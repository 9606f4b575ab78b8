"""The functional core: pure steps from (frame, state) to (frame, state); no I/O, no clock."""
