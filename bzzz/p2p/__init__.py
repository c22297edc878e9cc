"""Everything libp2p: the host, discovery, gossip and the peer table (py-libp2p stays in here)."""
