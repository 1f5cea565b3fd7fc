"""OSS's REST front door (`door`), its signatures (`auth`), its wire formats (`wire`) and one module
per family of operations (`buckets`, `objects`, `multipart`)."""
