"""Retrieval: corpus readers, the collection build job (shards -> sparse + dense indexes), searching
(sparse, dense, hybrid) and fusion. Uses lsr and indexer; used by eval and service."""
