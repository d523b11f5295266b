"""Mind the gap claims: work in progress (see issue 4)."""
