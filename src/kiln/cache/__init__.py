"""The build cache: what a build remembers of earlier ones.

keys (the chain of content hashes: key0 from the builder and its source, one key per provisioner),
plan (which provisioners a build takes from the cache and why the others run), records (what the
last build of a template's build had, for the causes and `kiln build -if-changed`), layers (the
qemu builder's disk layers in the cache folder, with their locks and index).
"""
