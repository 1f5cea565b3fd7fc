"""The model layer: what the emulated cloud holds and how it changes, with no HTTP in it.

`kinds` declares each resource's fields (typed and documented), `lifecycle` the status transitions
that move with time and with machine work, `cloud` the resources in the store, the backend that runs
instances and the background work on them, `images` the public image and image look-ups, `regions`
the regions and zones. The API layer (`kiln.localcloud.api`, the `actions`) reads and changes the
model only through these.
"""
