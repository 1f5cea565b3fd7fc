"""The API layer: how requests reach the model and what they get back.

`rpc` is the front door of Alibaba's RPC APIs (ECS, VPC and localcloud's own `Kiln*` actions): it
reads a request's parameters, checks its signature (`auth`), finds the action in the `registry` by
Version and Action, honours ClientToken, and renders the answer or the catalogued error
(`kiln.localcloud.errors`) as JSON or XML (`kiln.localcloud.wire`). `request` parses parameters
for the actions, `describe` is the one helper of the Describe actions, `views` shape resources as
the API shows them. A product with another protocol (OSS is REST) gets a front door of its own
beside `rpc`, on the same model.
"""
