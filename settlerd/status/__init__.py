"""What the node publishes about a swap: the status document, and the signature that proves it wrote it."""
