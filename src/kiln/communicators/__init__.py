"""How kiln talks to the machine being built: `none` (no connection) and `ssh`."""
