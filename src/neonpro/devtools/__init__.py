"""Developer tools: demonstration data and the like.

Not use cases: nothing under :mod:`neonpro.services` imports them. They drive the services
the same way the CLI does, as a named system actor, one transaction per service call.
"""
