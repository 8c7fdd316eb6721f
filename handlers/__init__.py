"""The conversation engine: channel-neutral types and flows as plain code over explicit state."""
