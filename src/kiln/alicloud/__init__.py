"""The one place kiln talks to Alibaba Cloud: credentials, the API client (official SDK), retries,
waiters, the journal of temporary resources and the reaper that deletes what a killed build left.

Nothing here imports the SDK at module import time: the SDK (tens of MB of generated models) is
loaded only when a client is actually made, so `kiln validate` of an alicloud template stays fast.
"""
