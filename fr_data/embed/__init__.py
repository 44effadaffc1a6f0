"""Embedding a shard folder with a face backbone: model loading, the forward pass, the embeddings folder."""
