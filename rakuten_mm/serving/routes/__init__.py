"""Thin routers: parse the request, call the service, shape the answer."""
