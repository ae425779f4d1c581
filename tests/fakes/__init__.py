"""Hand-written doubles for services the tests cannot reach, each speaking the real wire format."""
