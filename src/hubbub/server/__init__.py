"""The aiohttp edge: HTTP routes, WebSocket upgrade, the process runner. It moves bytes only."""
