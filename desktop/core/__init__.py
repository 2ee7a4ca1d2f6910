"""Pure-Python core: requests, events, errors, cancellation, A1111 text formats. No torch, no Qt."""
