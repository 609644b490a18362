"""Schema migrations: numbered plain SQL files per schema and the runner that applies them."""
