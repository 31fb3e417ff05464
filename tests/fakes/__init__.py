"""Local fake servers that speak hosted providers' protocols, for the real clients to talk to."""
