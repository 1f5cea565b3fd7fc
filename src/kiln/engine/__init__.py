"""The build engine: steps with cleanup, builds, the scheduler, output and secrets."""
