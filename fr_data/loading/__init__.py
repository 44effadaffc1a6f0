"""Reading shards back: the streaming train loader and random access by sample key."""
