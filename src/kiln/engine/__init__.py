"""The build engine: steps with cleanup, preparing builds, running them, and the scheduler."""
