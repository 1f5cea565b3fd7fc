"""What every layer of kiln needs, below all of them: cancellation (`cancel`), output (`ui`) and
secret redaction (`secrets`). Nothing here imports any other part of kiln but `kiln.errors`, so the
template, config, communicator, component, builder and engine layers can all use it without
importing each other."""
