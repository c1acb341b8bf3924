"""sisguard client SDK."""
