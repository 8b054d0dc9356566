// The Metering module: see docs/ARCHITECTURE.md. Its first code lands with the issue that owns it.
