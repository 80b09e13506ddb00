"""The web-service benchmark (issue 11's "a web service" target): an aiohttp
service under wrk, plain and instrumented in several ways; see runner.py."""
